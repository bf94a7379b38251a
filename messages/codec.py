"""msgpack codec: one reused encoder and typed decoders (no pickle anywhere on the bus)."""

import msgspec

from messages.envelope import AnyMessage
from messages.events import AnyEvent


class _BatchEvents(msgspec.Struct):
    """The events of an encoded `Batch` message (its other fields are skipped)."""

    events: list[AnyEvent]


_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(AnyMessage)
_event_decoder = msgspec.msgpack.Decoder(AnyEvent)
_batch_events_decoder = msgspec.msgpack.Decoder(_BatchEvents)

encode = _encoder.encode


def decode_message(data: bytes) -> AnyMessage:
    """Decode a bus message; raises msgspec.DecodeError / ValidationError on anything else."""
    return _message_decoder.decode(data)


def decode_event(data: bytes | msgspec.Raw) -> AnyEvent:
    """Decode and validate one event (constraints are checked here)."""
    return _event_decoder.decode(data)


def decode_batch_events(data: bytes) -> list[AnyEvent]:
    """Every event of an encoded `Batch`, decoded and validated in one call (constraints as in
    `decode_event`); raises as `decode_event` does if any one of them is bad: then decode them
    one by one to tell the bad from the good."""
    return _batch_events_decoder.decode(data).events
