"""Control plane messages (owns every message type of the control endpoint).

Actors report `ActorStats` to the coordinator once a second (which doubles as a heartbeat);
`bin/ctl` sends one command (`Status`, `Start`, `Stop`, `Restart`) and gets a `Reply`. Each command
is its own tagged struct, so the coordinator matches on the type (actors/control_plane.py) and
`bin/ctl` names its subcommands after the tags. Same typed msgpack codec as the data path.
"""

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
    unreachable_since_ns: int = 0  # collector: its venue has not answered since then (0: it answers)
    last_error: str = ""  # collector, while unreachable: the last failed call


class Status(Message, frozen=True, kw_only=True, tag="status"):
    """Every actor's state and counters."""


class Start(Message, frozen=True, kw_only=True, tag="start"):
    """Start a stopped or failed actor."""

    name: str


class Stop(Message, frozen=True, kw_only=True, tag="stop"):
    """Stop one actor (it drains first); it stays stopped until `start`."""

    name: str


class Restart(Message, frozen=True, kw_only=True, tag="restart"):
    """Restart one actor (e.g. collector.binance); storage keeps running."""

    name: str


Command = Status | Start | Stop | Restart
ACTOR_COMMANDS: tuple[type[Start | Stop | Restart], ...] = (Restart, Stop, Start)  # the ones naming an actor


def command_name(command: type[Message] | Message) -> str:
    """The tag a command travels under, which is also its `bin/ctl` subcommand."""
    return command.__struct_config__.tag


class ActorStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str  # running, unreachable (a collector whose venue does not answer), backoff, stopping, stopped, failed
    pid: int | None
    uptime_s: float
    restarts: int
    events_in: int
    events_out: int
    queue_depth: int
    last_event_ns: int
    loop_lag_s: float = 0.0
    unreachable_since_ns: int = 0  # state unreachable: since when (UNIX ns)
    last_error: str = ""  # state unreachable: the last failed call


class Reply(Message, frozen=True, kw_only=True, tag="reply"):
    ok: bool
    message: str = ""
    actors: list[ActorStatus] = []


ControlMessage = ActorStats | Status | Start | Stop | Restart | Reply
control_decoder = msgspec.msgpack.Decoder(ControlMessage)
