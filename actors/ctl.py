"""`bin/ctl`: control a running mesh (status, restart, stop, start of one actor); owns the commands'
command line and how a status is printed.

    bin/ctl status [--json]                  # every actor: state, pid, uptime, restarts, events, queue
                                             # (a collector whose venue does not answer: unreachable, since, error)
    bin/ctl restart collector.binance        # the rest of the mesh (and storage) keeps running
    bin/ctl stop collector.bybit
    bin/ctl start collector.bybit

Talks to the coordinator's control endpoint (`bus.control` in topology.yaml, default
`ipc:///tmp/derivs-<uid>/<mesh>/control`) with typed msgpack messages (messages/control.py).
"""

import sys
import time

import click
import msgspec
import zmq

from actors.topology import TopologyError, load_topology
from messages.codec import encode
from messages.timeunits import NS, utc
from messages.control import ACTOR_COMMANDS, ActorStatus, Command, Reply, Restart, Start, Status, Stop, command_name, control_decoder

REPLY_TIMEOUT_S = 15.0  # a restart waits for the actor to drain (up to ~5 s) and start again
STATUS_TIMEOUT_S = 3.0  # the coordinator answers status at once: silence means no mesh


def ask(endpoint: str, command: Command, timeout_s: float = REPLY_TIMEOUT_S) -> Reply:
    """Send one command to the coordinator and wait for its reply."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(encode(command))
        if not sock.poll(int(timeout_s * 1000)):
            raise click.ClickException(
                f"no answer from a coordinator on {endpoint} within {timeout_s:.0f}s: is the mesh running "
                "(bin/launch with this topology)?")
        try:
            reply = control_decoder.decode(sock.recv())
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise click.ClickException(f"undecodable answer from {endpoint}: {exc}") from None
    finally:
        sock.close()
    if not isinstance(reply, Reply):
        raise click.ClickException(f"unexpected answer from {endpoint}: {type(reply).__name__}")
    return reply


def _age(ns: int) -> str:
    if not ns:
        return "-"
    seconds = max(0.0, time.time() - ns / NS)
    return f"{seconds:.1f}s ago" if seconds < 3600 else utc(ns) + "Z"


def _uptime(s: float) -> str:
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def status_table(actors: list[ActorStatus]) -> str:
    head = ("ACTOR", "STATE", "PID", "UPTIME", "RESTARTS", "EVENTS IN", "EVENTS OUT", "QUEUE", "LAST EVENT")
    rows = [head] + [
        (a.name, a.state, str(a.pid or "-"), _uptime(a.uptime_s) if a.pid else "-", str(a.restarts),
         f"{a.events_in:,}", f"{a.events_out:,}", f"{a.queue_depth:,}", _age(a.last_event_ns))
        for a in actors
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines + [unreachable_line(a) for a in actors if a.unreachable_since_ns])


def unreachable_line(a: ActorStatus) -> str:
    """Why a collector collects nothing: its venue has not answered since ..., the last error."""
    seconds = max(0.0, time.time() - a.unreachable_since_ns / NS)
    return f"{a.name}: venue unreachable since {utc(a.unreachable_since_ns)}Z ({seconds:.0f}s): {a.last_error}"


@click.group()
@click.option("--topology", "topology_path", default="topology.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The running mesh's topology (names its control endpoint).")
@click.pass_context
def cli(ctx: click.Context, topology_path: str) -> None:
    """Control a running mesh: status, and restart / stop / start of one actor."""
    try:
        topo, _ = load_topology(topology_path)
    except TopologyError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.obj = topo.endpoint("control")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.pass_obj
def status(endpoint: str, as_json: bool) -> None:
    """Every actor's state, pid, uptime, restarts, events in/out, queue depth and last event."""
    reply = ask(endpoint, Status(), STATUS_TIMEOUT_S)
    if as_json:
        click.echo(msgspec.json.encode(reply.actors).decode())
    else:
        click.echo(status_table(reply.actors))


def _act(command: type[Start | Stop | Restart]):  # noqa: ANN202 - click command factory
    @click.argument("name")
    @click.pass_obj
    def run(endpoint: str, name: str) -> None:
        reply = ask(endpoint, command(name=name))
        if not reply.ok:
            raise click.ClickException(reply.message)
        click.echo(reply.message)

    run.__doc__ = command.__doc__
    return cli.command(command_name(command))(run)


for _command in ACTOR_COMMANDS:
    _act(_command)


if __name__ == "__main__":
    cli(prog_name="ctl")
    sys.exit(0)
