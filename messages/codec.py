"""msgpack codec: one reused encoder and typed decoders (no pickle anywhere on the bus)."""

import msgspec

from messages.envelope import AnyMessage
from messages.events import AnyEvent

_encoder = msgspec.msgpack.Encoder()
_message_decoder = msgspec.msgpack.Decoder(AnyMessage)
_event_decoder = msgspec.msgpack.Decoder(AnyEvent)

encode = _encoder.encode


def decode_message(data: bytes) -> AnyMessage:
    """Decode a bus message; raises msgspec.DecodeError / ValidationError on anything else."""
    return _message_decoder.decode(data)


def decode_event(data: bytes | msgspec.Raw) -> AnyEvent:
    """Decode and validate one event (constraints are checked here)."""
    return _event_decoder.decode(data)
