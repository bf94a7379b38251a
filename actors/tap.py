"""Live tap: print what the validator publishes on the live bus, as it happens.

    bin/tap topology.yaml                         # liquidations of every venue (default --kind liq)
    bin/tap topology.yaml --kind oi --venue bybit
    bin/tap topology.yaml --symbol BTC --json     # JSON lines
    bin/tap --endpoint ipc:///tmp/derivs-1000/derivs/taps   # any publisher with the same topics

The validator's bus (`topology.yaml` bus.taps, default `ipc:///tmp/derivs-<uid>/<mesh>/taps`) sends two frames
per good event: the topic `<kind>.<VENUE>.<INSTRUMENT_ID>` (kinds: liq, oi, funding, instrument,
gap) and the msgpack-encoded event, decoded here with the same strict typed decoder as the
validator. Kind and venue are filtered by the SUB prefix (the publisher drops the rest);
`--symbol` matches the instrument id, the ccxt symbol or the base coin (BTC, BTCUSDT,
BTCUSDT-PERP.BINANCE, BTC/USDT:USDT).

On connect the bus replays the last event of every matching stream (actors/taps_cache.py), so a
tap shows the current state at once. That replay reaches every subscriber of the stream, so an
exact repeat of the previous message on a topic is dropped here. A tap slower than the bus loses
messages (it never slows storage); killing it changes nothing for the mesh. With nothing
publishing on the endpoint (no mesh running) it says so after NO_BUS_AFTER_S and exits with 1.
"""

import asyncio
import contextlib
import signal
import sys
import threading
import time
from typing import TextIO

import click
import msgspec
import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from actors.inbox import MAX_MESSAGE_BYTES
from messages.codec import decode_event
from messages.events import AnyEvent, FundingRate, Gap, Liquidation, OpenInterest
from messages.timeunits import NS, utc
from venues import VENUE_NAMES

KINDS = ("liq", "oi", "funding", "instrument", "gap", "all")
NO_BUS_AFTER_S = 3.0  # connecting to a running mesh's bus takes milliseconds


class NoBus(Exception):
    """Nothing publishes on the endpoint."""


def format_event(e: AnyEvent) -> str:
    head = f"{utc(e.ts_event, millis=True)}  {e.venue:<11} {e.instrument_id:<26}"
    match e:
        case Liquidation():
            return f"{head} LIQ  {e.side:<5} {e.quantity:,.6g} @ {e.price:,.8g} = {e.value:,.2f} USD"
        case OpenInterest():
            return f"{head} OI   {e.open_interest:,.4f} base = {e.open_interest_value:,.0f} USD"
        case FundingRate():
            return f"{head} FUND {e.rate * 100:+.4f}% / {e.interval_minutes} min" + (" (settled)" if e.settled else "")
        case Gap():
            return f"{head} GAP  {e.stream} until {utc(e.end_ns, millis=True)} ({(e.end_ns - e.ts_event) / NS:.1f} s): {e.reason}"
        case _:
            return f"{head} {type(e).__name__.upper()}"


def prefixes(kind: str, venue: str | None) -> list[bytes]:
    kinds = list(KINDS[:-1]) if kind == "all" else [kind]
    return [f"{k}.{venue.upper()}." .encode() if venue else f"{k}.".encode() for k in kinds]


def matches_symbol(e: AnyEvent, symbol: str | None) -> bool:
    if not symbol:
        return True
    s = symbol.strip().upper()
    iid = e.instrument_id.upper()
    return s in (iid, iid.rsplit(".", 1)[0], e.symbol.upper(), e.symbol.split("/")[0].upper()) or iid.split("-")[0] == s


async def tap(endpoint: str, kind: str, venue: str | None, symbol: str | None, as_json: bool,
              count: int | None, seconds: float | None, out=None) -> int:
    """Print matching events until `count` were printed, `seconds` passed, or SIGINT; returns count."""
    out = out or sys.stdout
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    for p in prefixes(kind, venue):
        sock.setsockopt(zmq.SUBSCRIBE, p)
    try:
        await _connect(sock, endpoint)
        return await _print(sock, symbol, as_json, count, seconds, out)
    finally:
        sock.close()
        ctx.term()


async def _connect(sock: zmq.asyncio.Socket, endpoint: str) -> None:
    """Connect; raise NoBus if no publisher accepts the connection within NO_BUS_AFTER_S."""
    monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED)  # before connecting: the event must not be missed
    try:
        sock.connect(endpoint)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(NO_BUS_AFTER_S):
                while parse_monitor_message(await monitor.recv_multipart())["event"] != zmq.EVENT_CONNECTED:
                    pass
                return
    finally:
        sock.disable_monitor()
        monitor.close()
    raise NoBus(f"nothing publishes on {endpoint} (no connection within {NO_BUS_AFTER_S:.0f}s): is the mesh "
                "running? Start it with `bin/launch TOPOLOGY` (`bin/ctl status` shows its actors)")


async def _print(sock: zmq.asyncio.Socket, symbol: str | None, as_json: bool, count: int | None,
                 seconds: float | None, out: TextIO) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():  # in-process use from a thread: no signals
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    deadline = None if seconds is None else time.monotonic() + seconds
    encoder = msgspec.json.Encoder()
    printed = 0
    last: dict[bytes, bytes] = {}  # topic -> previous payload: a replay to another tap repeats it
    while not stop.is_set() and (count is None or printed < count):
        timeout = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if timeout <= 0:
            break
        if not await sock.poll(int(timeout * 1000)):
            continue
        frames = await sock.recv_multipart()
        try:
            events = bus_events(frames, last)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            print(f"warning: undecodable message on {frames[0]!r}: {exc}", file=sys.stderr)
            continue
        for event in events:
            if not matches_symbol(event, symbol):
                continue
            line = encoder.encode(event).decode() if as_json else format_event(event)
            print(line, file=out, flush=True)
            printed += 1
    return printed


def bus_events(frames: list[bytes], last: dict[bytes, bytes]) -> list[AnyEvent]:
    """The events one message of the live bus carries: the one place a subscriber reads its wire
    format (bin/tap, live/bus.py). `last` (topic -> previous payload, kept by the caller) drops an
    exact repeat: a last value replayed for another subscriber. Raises msgspec's DecodeError or
    ValidationError for a message that does not decode."""
    if len(frames) != 2 or last.get(frames[0]) == frames[1]:
        return []
    last[frames[0]] = frames[1]
    return [decode_event(frames[1])]


@click.command(context_settings={"show_default": True})
@click.argument("topology_path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--endpoint", default=None, help="Connect here instead of the topology's taps endpoint.")
@click.option("--kind", default="liq", type=click.Choice(KINDS), help="Event kind (topic prefix).")
@click.option("--venue", default=None, type=click.Choice(VENUE_NAMES, case_sensitive=False))
@click.option("--symbol", default=None, help="BTC, BTCUSDT, BTCUSDT-PERP.BINANCE or BTC/USDT:USDT.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--count", type=int, default=None, help="Exit after this many events.")
@click.option("--seconds", type=float, default=None, help="Exit after this many seconds.")
def main(topology_path, endpoint, kind, venue, symbol, as_json, count, seconds) -> None:
    """Print the mesh's live events (liquidations by default) as readable or JSON lines."""
    if endpoint is None:
        if topology_path is None:
            raise click.UsageError("give TOPOLOGY_PATH or --endpoint")
        from actors.topology import load_topology

        topo, _ = load_topology(topology_path)
        endpoint = topo.endpoint("taps")
    try:
        asyncio.run(tap(endpoint, kind, venue, symbol, as_json, count, seconds))
    except NoBus as exc:
        raise click.ClickException(str(exc)) from None


if __name__ == "__main__":
    main()
