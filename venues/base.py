"""The venue adapter interface: everything venue-specific that the collector, the CLI, history
and the budget need, as methods and attributes of one `VenueAdapter` subclass per venue
(`venues/<venue>/adapter.py`), so that none of them branches on a venue's name.

What an adapter carries:

- identity: `name` (topology), `venue` (events), `ccxt_id`, `env_prefix`, ccxt `options`;
- its ccxt client (`client()`, `venues/client.py`) with the venue's `limits` (`limits.py`) and
  its emulator URLs (`sandbox_config`);
- markets: which are collected (`perpetuals`), their ids (`instrument_id`, `raw_symbol`),
  symbol resolution (`resolve`) and instrument definitions (`definition`);
- current open interest and funding (`fetch_open_interest`, `fetch_funding`);
- history (`history.py` of the venue, driven by `venues/history.py`): OI periods and retention,
  OI and settled-funding paging, funding intervals.

The normalizers are pure functions of (venue payload, market, receive time), so they are
unit-tested without a network; the `fetch_*` coroutines only call ccxt and hand the venue's
items to them. A bad item becomes a `Malformed` event naming what was wrong, never an exception.
"""

import difflib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, NamedTuple

import msgspec
from loguru import logger

import ccxt.async_support as ccxt_async

from venues.budget import VenueLimits
from venues.client import client_class, now_ns, received_ns  # noqa: F401  # now_ns: for the adapters
from venues.schemas import MalformedItem

from messages.events import AnyEvent, FundingRate, Instrument, Malformed, OpenInterest, Venue, checked
from messages.timeunits import MS

Market = dict[str, Any]
FundingRows = dict[int, tuple[float, float | None]]  # settlement ms -> (rate, mark price or None)


class FundingPage(NamedTuple):
    """One page of settled funding, and the span [lo_ms, hi_ms] all pages so far have covered."""

    rows: FundingRows
    lo_ms: int
    hi_ms: int
Progress = Callable[[int, int, int], None]  # (pages so far, rows so far, reached ts ns)


def ms_to_ns(ms: int | None) -> int | None:
    return None if ms is None else int(ms) * MS


class HistoryUnavailable(Exception):
    """The venue has no history of this kind for the range (never had, or no longer keeps it)."""


def info_of(struct: Any) -> Any:
    """The venue's raw item inside a ccxt structure (for a dead letter), or the thing itself."""
    return struct.get("info", struct) if isinstance(struct, dict) else struct


def excerpt(payload: Any, limit: int = 2000) -> str:
    """What the venue sent, as JSON text cut to `limit` characters (for a dead letter)."""
    try:
        text = msgspec.json.encode(payload, enc_hook=repr).decode()
    except (TypeError, ValueError, msgspec.EncodeError):
        text = repr(payload)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _first_line(exc: BaseException, limit: int) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else ""


def describe(exc: BaseException, limit: int = 300) -> str:
    """A short reason for a log line: the ccxt class says more than the message alone."""
    text = _first_line(exc, limit)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def reason_of(exc: BaseException) -> str:
    """`describe`, except that a MalformedItem's message alone already names field and value."""
    return _first_line(exc, 300) if isinstance(exc, MalformedItem) else describe(exc)


BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0


def backoff_delay(failures: int, initial: float = BACKOFF_INITIAL_S, cap: float = BACKOFF_MAX_S,
                  rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: initial x 2^(failures-1), capped, x U(0.5, 1)."""
    return min(cap, initial * 2 ** max(0, failures - 1)) * (rng or random).uniform(0.5, 1.0)


class UnknownSymbol(LookupError):
    """A symbol the venue does not list as a linear perpetual."""

    def __init__(self, venue: str, symbol: str, suggestions: list[str]):
        self.venue, self.symbol, self.suggestions = venue, symbol, suggestions
        hint = f"; closest listed: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown symbol {symbol!r} on {venue} (not a listed linear perpetual){hint}")


class VenueAdapter:
    """Base of the per-venue adapters (see module doc). Subclasses set the class attributes and
    implement the methods that raise NotImplementedError; the history methods default to "none"."""

    name: ClassVar[str]  # topology name: binance
    venue: ClassVar[Venue]  # BINANCE
    ccxt_id: ClassVar[str]  # binanceusdm
    env_prefix: ClassVar[str]  # BINANCE -> BINANCE_API_KEY / BINANCE_API_SECRET
    options: ClassVar[dict[str, Any]] = {}
    limits: ClassVar[VenueLimits]  # its request limits and rate-limit answers (`<venue>/limits.py`)
    _absent: set[str] = frozenset()  # type: ignore[assignment]  # symbols the venue stopped answering for

    # -- client ---------------------------------------------------------------------------

    def client(self, sandbox_url: str | None = None, *, pro: bool = False, record_dir: str | None = None,
               on_raw_message: Callable[[Any, Any], bool | None] | None = None) -> Any:
        """A ccxt async (or ccxt.pro) client: the real venue, or the emulator at `sandbox_url`
        (`venues/client.py`: the request budget, recording to `record_dir`, raw WebSocket messages
        to `on_raw_message`)."""
        return client_class(type(self), pro)(sandbox_url=sandbox_url, record_dir=record_dir, on_raw_message=on_raw_message)

    @classmethod
    def sandbox_config(cls, base_url: str) -> dict[str, Any]:
        """ccxt constructor config that points the venue's client (REST and pro) at the emulator at
        `base_url` ("http://127.0.0.1:18080"); a fresh dict on every call.

        A plain dict is enough: ccxt deep-merges the constructor config into `describe()`, so only
        the keys given inside `urls["api"]` change and every other entry survives. Replacing the
        dict after construction (`ex.urls["api"] = {...}`) would lose entries: never do that."""
        raise NotImplementedError

    @staticmethod
    def ws_url(http_url: str) -> str:
        """http://host:port -> ws://host:port (https -> wss)."""
        http = http_url.rstrip("/")
        return "ws" + http[len("http"):] if http.startswith("http") else http

    # -- symbols --------------------------------------------------------------------------

    def perpetuals(self, markets: dict[str, Market]) -> dict[str, Market]:
        """The venue's active linear perpetuals, by ccxt unified symbol."""
        return {
            s: m
            for s, m in markets.items()
            if m.get("swap") and m.get("linear") and m.get("active") is not False
        }

    def collectable(self, markets: dict[str, Market]) -> dict[str, Market]:
        """`symbols: all`: every perpetual the venue lists and trades, by ccxt symbol (each venue
        says what that means in its adapter)."""
        return self.perpetuals(markets)

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
        """The perpetual's definition, valued as NautilusTrader 1.231's own adapter for this venue
        values its `CryptoPerpetual` from the same venue item (ccxt keeps it in `market["info"]`;
        ccxt's own numbers lose the tick's written precision: "0.10" -> 0.1)."""
        return checked(
            Instrument,
            venue=self.venue,
            symbol=market["symbol"],
            instrument_id=self.instrument_id(market),
            ts_event=ts_recv,
            ts_recv=ts_recv,
            raw_symbol=self.raw_symbol(market),
            max_leverage=((market.get("limits") or {}).get("leverage") or {}).get("max"),  # ccxt's market
            **self.definition(market["info"]),
        )

    def instrument_event(self, market: Market, ts_recv: int) -> Instrument | Malformed:
        """`instrument`, or a Malformed event naming what the venue's listing item lacks."""
        return self.safely(market, market.get("info"), ts_recv, lambda: self.instrument(market, ts_recv))

    def definition(self, item: Any) -> dict[str, Any]:
        """`Instrument` fields from the venue's raw listing item (per venue, as its Nautilus adapter);
        MalformedItem if the item does not fit the venue's listing schema."""
        raise NotImplementedError

    # -- per item: a bad item becomes a Malformed event, never an exception ---------------

    def malformed(self, market: Market, reason: str, raw: Any, ts_recv: int) -> Malformed:
        return Malformed(venue=self.venue, symbol=market["symbol"], instrument_id=self.instrument_id(market),
                         ts_event=ts_recv, ts_recv=ts_recv, reason=reason[:1000], raw=excerpt(raw))

    def safely(self, market: Market, raw: Any, ts_recv: int, build: Callable[[], AnyEvent]) -> AnyEvent:
        """`build()`, or a Malformed event with the reason if the venue's item cannot be normalized
        (`build` decodes the item with the venue's schema and makes the event with `checked`, so a
        value no event may hold is caught here, with its field, not by the validator)."""
        try:
            return build()
        except Exception as exc:  # noqa: BLE001 - whatever a bad payload does, it must not abort the fetch
            return self.malformed(market, reason_of(exc), raw, ts_recv)

    def unparsable(self, markets: list[Market], exc: BaseException, ts_recv: int) -> list[Malformed]:
        """The whole answer could not be read (not JSON, wrong shape): one Malformed per market."""
        return [self.malformed(m, f"answer could not be parsed: {reason_of(exc)}", "", ts_recv) for m in markets]

    def absent(self, markets: list[Market], found: Any, what: str) -> list[Market]:
        """The markets the venue's answer left out (delisted while running?): logged, not fatal."""
        missing = [m for m in markets if m["symbol"] not in found]
        for m in missing:
            if m["symbol"] not in self._absent:
                logger.bind(venue=self.venue).error("{} {}: not in the venue's {} answer (delisted?); skipped until it is back",
                                                    self.venue, self.raw_symbol(m), what)
        for m in markets:
            if m["symbol"] in found and m["symbol"] in self._absent:
                logger.bind(venue=self.venue).info("{} {}: listed again", self.venue, self.raw_symbol(m))
        self._absent = ({m["symbol"] for m in missing} | self._absent) - {m["symbol"] for m in markets if m["symbol"] in found}
        return missing

    async def per_symbol(self, call: Awaitable[Any], markets: list[Market], what: str,
                         build: Callable[[dict, Market, int], AnyEvent]) -> list[AnyEvent]:
        """One answer for all markets (`call`, a ccxt `fetch_*s`), normalized market by market:
        an unreadable answer or item becomes Malformed events, a market left out is logged."""
        try:
            found = await call
        except ccxt_async.BadResponse as exc:  # ccxt could not read the answer
            return self.unparsable(markets, exc, received_ns())
        except ccxt_async.BaseError:
            raise  # the venue is down, busy, in maintenance or refusing: the collector backs off
        except Exception as exc:  # noqa: BLE001 - ccxt choked on the answer itself
            return self.unparsable(markets, exc, received_ns())
        ts_recv = received_ns()
        if not isinstance(found, dict) or not found:  # read as nothing: not JSON, or not the venue's shape
            return self.unparsable(markets, MalformedItem(f"{what} answer holds no items (not JSON?)"), ts_recv)
        self.absent(markets, found, what)
        return [self.safely(m, info_of(found[m["symbol"]]), ts_recv, lambda m=m: build(found[m["symbol"]], m, ts_recv))
                for m in markets if m["symbol"] in found]

    # -- current values (ccxt calls, then the normalizers) ---------------------------------

    async def fetch_open_interest(self, client: Any, markets: list[Market]) -> list[OpenInterest | Malformed]:
        raise NotImplementedError

    async def fetch_funding(self, client: Any, markets: list[Market]) -> list[FundingRate | Malformed]:
        raise NotImplementedError

    async def poll_open_interest(self, client: Any, markets: list[Market], interval_s: float,
                                 emit: Callable[[list[AnyEvent]], None]) -> None:
        """One open-interest poll of `markets` (the collector's live list), its events handed to
        `emit` as they come; may take up to `interval_s` (a venue without a bulk call spreads its
        requests over it). Default: one `fetch_open_interest` (of a copy: a listing that changes
        while the request is out is not "missing from the answer")."""
        emit(await self.fetch_open_interest(client, list(markets)))

    # -- history (driven by venues/history.py; ranges in ms, closed) ---------------------------

    oi_history_periods: ClassVar[tuple[str, ...]] = ()  # ccxt timeframe names; () = no OI history
    oi_history_retention_days: ClassVar[int | None] = None  # the venue keeps only this much OI history
    no_oi_history: ClassVar[str] = ""  # why there is none (when `oi_history_periods` is empty)
    oi_archive_period: ClassVar[str | None] = None  # OI history only in a bulk archive, at this cadence
    # OI older than `oi_history_retention_days` from a public archive: a module with
    # `metrics_chunks(symbol, start_ms, end_ms, base_url)` and `ARCHIVE_URL` (cli/history_archive.py)
    oi_retention_archive: ClassVar[Any] = None

    def oi_history_missing(self) -> str:
        """What to tell a user who asks for OI history of a venue without any."""
        return f"{self.venue} publishes no open-interest history ({self.no_oi_history})"

    async def oi_history_pages(self, client: Any, market: Market, start_ms: int, end_ms: int, period: str,
                               progress: Progress | None) -> AsyncIterator[list[OpenInterest]]:
        """Open interest every `period` in [start_ms, end_ms] (aligned, within retention), in pages
        as they arrive, each later than the one before (any order inside a page)."""
        raise HistoryUnavailable(self.oi_history_missing())
        yield []  # an async generator

    async def settled_funding_pages(self, client: Any, market: Market, lo_ms: int, hi_ms: int,
                                    report: Any) -> AsyncIterator[FundingPage]:
        """Settled funding rows with funding time in [lo_ms, hi_ms], a page at a time, each with the
        span covered so far (the last page: [lo_ms, hi_ms]). `report` is told after every page
        (`venues.history.FundingProgress`): `report(pages, rows, reached_ms)` paging forward,
        `report.backward(pages, rows, oldest_ms)` paging backward."""
        raise NotImplementedError
        yield FundingPage({}, lo_ms, hi_ms)  # an async generator

    def default_funding_interval_minutes(self, market: Market) -> int:
        """The funding interval to plan with while nothing is stored (then the rows' own spacing)."""
        raise NotImplementedError

    async def current_funding_interval_minutes(self, client: Any, market: Market) -> int:
        """The venue's current funding interval (for a settled row without neighbours)."""
        return self.default_funding_interval_minutes(market)
