"""Control plane: actors report their stats to the coordinator (which doubles as a heartbeat),
and `bin/ctl` sends commands to it. Same typed msgpack codec as the data path."""

from typing import Literal

import msgspec

from messages.envelope import Message


class ActorStats(Message, frozen=True, kw_only=True, tag="stats"):
    """Sent by every actor once a second."""

    name: str
    pid: int
    events_in: int = 0
    events_out: int = 0
    queue_depth: int = 0  # collector: unacknowledged; writer: rows waiting for Parquet
    last_event_ns: int = 0
    loop_lag_s: float = 0.0  # since the event loop last turned (sent by a thread: also while the loop is busy)


class Command(Message, frozen=True, kw_only=True, tag="command"):
    command: Literal["status", "restart", "stop", "start"]
    name: str = ""


class ActorStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str  # running, backoff, stopping, stopped, failed
    pid: int | None
    uptime_s: float
    restarts: int
    events_in: int
    events_out: int
    queue_depth: int
    last_event_ns: int
    loop_lag_s: float = 0.0


class Reply(Message, frozen=True, kw_only=True, tag="reply"):
    ok: bool
    message: str = ""
    actors: list[ActorStatus] = []


ControlMessage = ActorStats | Command | Reply
control_decoder = msgspec.msgpack.Decoder(ControlMessage)
