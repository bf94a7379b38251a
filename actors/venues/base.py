"""What every venue adapter shares: the ccxt client, symbol resolution, instrument definitions.

A venue adapter turns ccxt results into `messages.events` structs. The normalizers are pure
functions of (ccxt structure, market, receive time), so they are unit-tested without a network;
the `fetch_*` coroutines only call ccxt and hand the results to them.
"""

import difflib
import os
import time
from decimal import Decimal
from typing import Any, ClassVar

import ccxt.async_support as ccxt_async

from messages.events import FundingRate, Instrument, OpenInterest, Venue

Market = dict[str, Any]

MS = 1_000_000  # ns per ms


def now_ns() -> int:
    return time.time_ns()


def ms_to_ns(ms: int | float | None) -> int | None:
    return None if ms is None else int(ms) * MS


def decimal_str(value: float | int | str | None) -> str | None:
    """A ccxt number as an exact decimal string (ccxt floats like 1e-05 -> '0.00001')."""
    if value is None:
        return None
    return format(Decimal(str(value)).normalize(), "f")


def decimals(increment: str) -> int:
    """Number of decimal places of a tick or step size ('0.001' -> 3, '10' -> 0)."""
    return max(0, -Decimal(increment).normalize().as_tuple().exponent)


class UnknownSymbol(LookupError):
    """A symbol the venue does not list as a linear perpetual."""

    def __init__(self, venue: str, symbol: str, suggestions: list[str]):
        self.venue, self.symbol, self.suggestions = venue, symbol, suggestions
        hint = f"; closest listed: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown symbol {symbol!r} on {venue} (not a listed linear perpetual){hint}")


class VenueAdapter:
    """Base of the per-venue adapters. Subclasses set the class attributes and normalizers."""

    name: ClassVar[str]  # topology name: binance
    venue: ClassVar[Venue]  # BINANCE
    ccxt_id: ClassVar[str]  # binanceusdm
    env_prefix: ClassVar[str]  # BINANCE -> BINANCE_API_KEY / BINANCE_API_SECRET
    options: ClassVar[dict[str, Any]] = {}

    # -- client ---------------------------------------------------------------------------

    def client(self, sandbox_url: str | None = None, *, pro: bool = False) -> Any:
        """A ccxt async (or ccxt.pro) client: the real venue, or the emulator at `sandbox_url`.

        Keys are optional and read from the environment only; they never reach a log line.
        """
        if sandbox_url:
            from emulator.ccxt_config import ccxt_config

            config = ccxt_config(self.name, sandbox_url)
        else:
            config = {}
        config.setdefault("options", {}).update(self.options)
        config["enableRateLimit"] = True
        key, secret = os.environ.get(f"{self.env_prefix}_API_KEY"), os.environ.get(f"{self.env_prefix}_API_SECRET")
        if key and secret:
            config.update(apiKey=key, secret=secret)
        if pro:
            import ccxt.pro as ccxt_pro

            return getattr(ccxt_pro, self.ccxt_id)(config)
        return getattr(ccxt_async, self.ccxt_id)(config)

    # -- symbols --------------------------------------------------------------------------

    def perpetuals(self, markets: dict[str, Market]) -> dict[str, Market]:
        """The venue's active linear perpetuals, by ccxt unified symbol."""
        return {
            s: m
            for s, m in markets.items()
            if m.get("swap") and m.get("linear") and m.get("active") is not False
        }

    def instrument_id(self, market: Market) -> str:
        raise NotImplementedError

    def raw_symbol(self, market: Market) -> str:
        return market["id"]

    def aliases(self, market: Market) -> list[str]:
        """Every way a user may name this market: unified, venue id, Nautilus id (with and
        without the venue suffix), base coin."""
        iid = self.instrument_id(market)
        return [market["symbol"], self.raw_symbol(market), iid, iid.rsplit(".", 1)[0], market["base"]]

    def resolve(self, markets: dict[str, Market], text: str) -> Market:
        """The market a user meant, or UnknownSymbol with the closest listed names."""
        table: dict[str, Market] = {}
        for market in self.perpetuals(markets).values():
            for alias in self.aliases(market):
                table.setdefault(alias.upper(), market)
        found = table.get(text.strip().upper())
        if found is not None:
            return found
        names = sorted({self.raw_symbol(m) for m in self.perpetuals(markets).values()})
        close = difflib.get_close_matches(text.strip().upper(), [n.upper() for n in names], n=3, cutoff=0.5)
        by_upper = {n.upper(): n for n in names}
        raise UnknownSymbol(self.venue, text, [by_upper[c] for c in close])

    # -- normalization --------------------------------------------------------------------

    def instrument(self, market: Market, ts_recv: int) -> Instrument:
        """The perpetual's definition (for Nautilus's CryptoPerpetual) from ccxt's market."""
        precision, limits = market["precision"], market.get("limits") or {}
        price_inc = decimal_str(precision["price"])
        size_inc = decimal_str(precision["amount"])
        return Instrument(
            venue=self.venue,
            symbol=market["symbol"],
            instrument_id=self.instrument_id(market),
            ts_event=ts_recv,
            ts_recv=ts_recv,
            raw_symbol=self.raw_symbol(market),
            base=market["base"],
            quote=market["quote"],
            settle=market["settle"],
            price_precision=decimals(price_inc),
            size_precision=decimals(size_inc),
            price_increment=price_inc,
            size_increment=size_inc,
            min_quantity=decimal_str((limits.get("amount") or {}).get("min")),
            max_quantity=decimal_str((limits.get("amount") or {}).get("max")),
            min_notional=decimal_str((limits.get("cost") or {}).get("min")),
            max_leverage=(limits.get("leverage") or {}).get("max"),
            maker_fee=decimal_str(market.get("maker")) or "0.0002",
            taker_fee=decimal_str(market.get("taker")) or "0.0005",
        )

    # -- fetches (ccxt calls, then the normalizers) --------------------------------------

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest]:
        raise NotImplementedError

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate]:
        raise NotImplementedError
