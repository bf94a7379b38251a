"""`derivs liquidations`: stream real-time liquidations straight from the venues (no mesh).

    derivs liquidations BTC -v binance -v bybit          # until Ctrl-C
    derivs liquidations BTC ETH --sandbox --seconds 10   # against the built-in emulator
    derivs liquidations BTC --json                       # one JSON object per line

One line per liquidation: time (venue, UTC), venue, instrument, the liquidated position's side,
quantity (base units), price, USD value. Outages are reported on stderr with their time span
(the stream reconnects by itself). Hyperliquid has no public liquidation feed: asking for it
prints that limitation and the other venues keep streaming. Exit status 1 if a venue could not
be used at all.
"""

import asyncio
import contextlib
import signal
import sys

import click
import msgspec
from loguru import logger

from venues.liquidation_stream import LiquidationStream, LiquidationsUnsupported, StreamScope
from actors.topology import VENUE_NAMES
from venues import ADAPTERS, UnknownSymbol, adapter
from cli.sandbox import emulator_urls
from messages.events import Liquidation
from messages.timeunits import utc

DEFAULT_VENUES = tuple(name for name, a in ADAPTERS.items() if a.liquidations.supported)  # every venue with a feed
DEFAULT_SYMBOLS = ("BTC",)


def _when(ns: int) -> str:
    return utc(ns, millis=True)


def format_line(e: Liquidation) -> str:
    return (f"{_when(e.ts_event)}  {e.venue:<8} {e.instrument_id:<22} {e.side:<5} liquidated  "
            f"{e.quantity:>14,.6g} @ {e.price:>12,.8g}  = {e.value:>14,.2f} USD")


async def _stream_venue(name: str, symbols: tuple[str, ...], url: str | None, as_json: bool, stop: asyncio.Event,
                        errors: list[str]) -> None:
    ad = adapter(name)
    client = ad.client(url, pro=True)
    try:
        try:
            markets = await client.load_markets()
        except Exception as exc:  # noqa: BLE001 - report and let the other venues run
            errors.append(f"{ad.venue}: venue unreachable: {type(exc).__name__}: {exc}")
            return
        chosen = []
        for text in symbols:
            try:
                chosen.append(ad.resolve(markets, text))
            except UnknownSymbol as exc:
                errors.append(f"{ad.venue}: {exc}")
        if not chosen:
            return
        encoder = msgspec.json.Encoder()

        async def on_event(e: Liquidation) -> None:
            line = encoder.encode(e).decode() if as_json else format_line(e)
            click.echo(line)

        async def on_gap(start: int, end: int, reason: str) -> None:
            click.echo(f"warning: {ad.venue}: no data from {_when(start)} to {_when(end)} "
                       f"({(end - start) / 1e9:.1f} s): {reason}", err=True)

        await LiquidationStream(ad, client, StreamScope(markets=chosen), on_event, on_gap, stop).run()
    finally:
        await client.close()


async def _main(venues: list[str], symbols: tuple[str, ...], urls: dict[str, str] | None, as_json: bool,
                seconds: float | None) -> list[str]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    errors: list[str] = []
    tasks = [asyncio.create_task(_stream_venue(v, symbols, (urls or {}).get(v), as_json, stop, errors)) for v in venues]
    if seconds is not None:
        loop.call_later(seconds, stop.set)
    await asyncio.gather(*tasks)
    return errors


@click.command("liquidations")
@click.argument("symbols", nargs=-1)
@click.option("-v", "--venue", "venues", multiple=True, type=click.Choice(VENUE_NAMES),
              help=f"Venue to stream (repeatable; default: {' and '.join(DEFAULT_VENUES)}).")
@click.option("--sandbox", is_flag=True, help="Use the built-in emulated venues instead of the real ones.")
@click.option("--emulator", "emulator_file", type=click.Path(dir_okay=False),
              help="JSON file {venue: url} of a running emulator (e.g. run/emulator.json of a sandbox mesh).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a readable line.")
@click.option("--seconds", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--verbose", is_flag=True, help="Log connections and reconnects on stderr.")
def liquidations(symbols, venues, sandbox, emulator_file, as_json, seconds, verbose) -> None:
    """Real-time liquidations for SYMBOLS (default: BTC) from Binance and Bybit.

    The side is the side of the position that was liquidated (LONG/SHORT); the value is
    quantity x price in USD. Hyperliquid has no public liquidation feed.
    """
    logger.remove()
    logger.add(sys.stderr, level="INFO" if verbose else "WARNING",
               format="{time:HH:mm:ss.SSS} | {level: <7} | {extra[venue]} | {message}")
    logger.configure(extra={"venue": "-"})
    requested = list(dict.fromkeys(venues or DEFAULT_VENUES))
    usable, failed = [], False
    for v in requested:
        try:
            adapter(v).liquidations.require()
            usable.append(v)
        except LiquidationsUnsupported as exc:
            click.echo(f"error: {v}: {exc}", err=True)
            failed = True
    if not usable:
        sys.exit(1)
    with emulator_urls(sandbox, emulator_file, usable) as urls:
        errors = asyncio.run(_main(usable, tuple(symbols) or DEFAULT_SYMBOLS, urls, as_json, seconds))
    for message in errors:
        click.echo(f"error: {message}", err=True)
    if errors or failed:
        sys.exit(1)
