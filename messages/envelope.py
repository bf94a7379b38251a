"""The envelope every event travels in, and the control messages of the storage contract.

Every event a collector sends is numbered: `source` (actor name), `epoch` (random per process
start) and `seq` (+1 per event, no holes). The writer acknowledges cumulatively, so the
collector may forget everything up to an acknowledged seq (design §3).

Events travel in batches (`Batch`: consecutive seqs of one stream in one message, one decode of
the frame, one WAL append and one ack for all of them); a single `Envelope` is the same thing for
one event, still accepted everywhere (a WAL or a peer of an earlier version).
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


class Batch(Message, frozen=True, kw_only=True, tag="batch"):
    """Events `seq`, `seq + 1`, ... of one stream, still encoded. From the validator on,
    `rejected` holds (index in `events`, reason) of those it refused: they stay in place (no seq
    goes missing) and the writer stores them as dead letters, their neighbours as rows."""

    source: str
    epoch: int
    seq: int  # of events[0]
    events: list[msgspec.Raw]
    rejected: list[tuple[int, str]] = []

    @property
    def last(self) -> int:
        return self.seq + len(self.events) - 1


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


AnyMessage = Envelope | Batch | Rejected | Ack | ResendFrom | Heartbeat
