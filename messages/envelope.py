"""The envelope every event travels in, and the control messages of the storage contract.

Every event a collector sends is numbered: `source` (actor name), `epoch` (random per process
start) and `seq` (+1 per event, no holes). The writer acknowledges cumulatively, so the
collector may forget everything up to an acknowledged seq (design §3).
"""

import msgspec


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of everything on the mesh's sockets."""


class Envelope(Message, frozen=True, kw_only=True, tag="data"):
    """One event, still encoded: the validator decodes `payload` with the strict decoder."""

    source: str
    epoch: int
    seq: int
    payload: msgspec.Raw


class Rejected(Message, frozen=True, kw_only=True, tag="rejected"):
    """An event the validator refused; stored in the dead-letter file, keeps seq accounting whole."""

    source: str
    epoch: int
    seq: int
    reason: str
    payload: bytes


class Ack(Message, frozen=True, kw_only=True, tag="ack"):
    """Every seq <= `seq` from (source, epoch) is durable in the writer's WAL."""

    source: str
    epoch: int
    seq: int


class ResendFrom(Message, frozen=True, kw_only=True, tag="resend"):
    """The writer saw a hole or restarted: re-send everything after `seq`."""

    source: str
    epoch: int
    seq: int


class Heartbeat(Message, frozen=True, kw_only=True, tag="heartbeat"):
    """I am alive; `seq` is the last seq I sent (lets a receiver notice a lost tail);
    `lost_from`..`forgotten`: events that were acknowledged, then asked for again (the writer's
    WAL lost them); I hold none of them and recorded them as a gap: stop waiting for them."""

    source: str
    epoch: int
    seq: int
    ts: int
    lost_from: int = 0
    forgotten: int = 0


AnyMessage = Envelope | Rejected | Ack | ResendFrom | Heartbeat
