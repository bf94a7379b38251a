"""Owns what each emulated venue lists: a realistic universe of perpetuals per venue, deterministic
from the seed, plus the perpetuals listed at run time (`POST /_emulator/list`, `emulator/listings.py`).

`full` (the default) is about as large as the real venues are (late 2026): Binance ~540 USDT-M
perpetuals in TRADING, Bybit ~560 linear USDT perpetuals in Trading (+ USDC perpetuals), Hyperliquid
~200 perpetuals (+ ~30 `isDelisted`). `core` is the six reference coins of `emulator/market.py`
only (BTC, ETH, SOL, XRP, DOGE, HYPE; tests that assert an exact listing ask for it).

What varies per listing, as on the venues (each venue turns a `Listing` into its own contract data
in `emulator/<venue>/instruments.py`):
- the base as the venue prints it: small-priced coins trade in multiples, `1000PEPE`
  (Binance, Bybit), `10000LADYS` / `1000000MOG` (Bybit, Binance), `kPEPE` (Hyperliquid); the
  market model knows the multiple (`market.underlying`) so every venue quotes the same coin;
- the listing date (spread over the venue's life, a few within the last weeks, relative to the day
  the universe is built), the funding interval (Binance 8h/4h/1h, Bybit 8h/4h/2h/1h, Hyperliquid 1h)
  and, through the coin's price, tick and lot sizes.

Generated coin names are fixed (the same for every seed: a user can name one); which venue lists
which coin, the dates, intervals and prices come from the seed.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from emulator.market import COIN_SPECS, DAY, LISTINGS, Market, coin_spec, underlying

T = TypeVar("T")

SIZES = ("full", "core")
UNIVERSE_SIZE = "full"
# Active perpetuals per venue in the full universe (the core coins included).
FULL_COUNTS = {"binance": 538, "bybit": 562, "hyperliquid": 197}
HL_DELISTED = 30  # generated Hyperliquid coins kept in the universe with isDelisted: true
HL_CLOSING = ("MATIC", "HPOS")  # real delisted Hyperliquid coins, last in every universe (hyperliquid/assets.py)
# The day each venue began listing perpetuals (listing dates are never earlier).
VENUE_START_MS = {"binance": 1_569_369_600_000, "bybit": 1_585_526_400_000, "hyperliquid": 1_685_577_600_000}
# Funding intervals in hours of the generated perpetuals, with their weights.
INTERVAL_MIX = {"binance": ((8, 70), (4, 27), (1, 3)), "bybit": ((8, 58), (4, 32), (2, 3), (1, 7)),
                "hyperliquid": ((1, 1),)}
_POOL = 760
_ONSETS = ("B", "D", "F", "G", "K", "L", "M", "N", "P", "R", "S", "T", "V", "Z", "CH", "TR", "QU", "X", "W", "Y")
_VOWELS = ("A", "E", "I", "O", "U", "AI", "OO", "Y")
_CODAS = ("", "", "N", "X", "R", "S", "T", "K", "M")


def _h(*parts: object) -> int:
    raw = "|".join(map(str, parts)).encode()
    return zlib.crc32(raw) ^ (zlib.adler32(raw[::-1]) << 32)


def _unit(*parts: object) -> float:
    """A hashed uniform value in [0, 1)."""
    return (_h(*parts) % 1_000_003) / 1_000_003


def coin_names(n: int = _POOL) -> tuple[str, ...]:
    """The generated coins, most traded first: pronounceable, 3-7 letters, never a core coin's
    name, never one the market model would read as a multiple (see `market.underlying`)."""
    names: list[str] = []
    seen = set(COIN_SPECS)
    i = 0
    while len(names) < n:
        syllables = 2 + (_h("len", i) % 3 == 0)
        name = "".join(_ONSETS[_h("on", i, k) % len(_ONSETS)] + _VOWELS[_h("vo", i, k) % len(_VOWELS)]
                       for k in range(syllables)) + _CODAS[_h("co", i) % len(_CODAS)]
        i += 1
        if 3 <= len(name) <= 7 and name not in seen:
            seen.add(name)
            names.append(name)
    return tuple(names)


@dataclass(frozen=True, slots=True)
class Listing:
    """One contract a venue lists, venue-neutral."""

    venue: str
    symbol: str  # as the venue names it: "1000PEPEUSDT", "BTCPERP", "kPEPE"
    base: str  # the venue's base asset / coin: "1000PEPE", "kPEPE"; the market model's coin
    quote: str  # "USDT" | "USDC"
    listed_ms: int  # Binance onboardDate, Bybit launchTime
    interval_h: int
    status: str = "trading"  # "trading" | "settling" | "pending" | "delisted" (Hyperliquid's isDelisted)
    rank: int = 0  # 0 = the most traded; drives sizes and the share of liquidations
    core: bool = False  # one of the reference coins (emulator/market.py), with the venues' real values
    added: bool = False  # listed at run time (POST /_emulator/list)

    @property
    def active(self) -> bool:
        return self.status == "trading"


def _prefix(venue: str, price: float) -> str:
    """The multiple a venue trades a small-priced coin in: 1000PEPE, 10000LADYS (Bybit), kPEPE."""
    if price >= 0.002:
        return ""
    if venue == "hyperliquid":
        return "k"
    mults = (1000, 1_000_000) if venue == "binance" else (1000, 10_000, 1_000_000)
    return str(next((m for m in mults if price * m >= 0.001), 1_000_000))


def _pick(weights: tuple[tuple[int, int], ...], u: float) -> int:
    total = sum(w for _, w in weights)
    acc = 0.0
    for value, w in weights:
        acc += w / total
        if u < acc:
            return value
    return weights[-1][0]


@dataclass
class Universe:
    """The listings of every venue for one seed; `add` lists a new perpetual at run time."""

    seed: int
    size: str = UNIVERSE_SIZE
    anchor_ms: int = 0  # UTC midnight of the day the universe was built: "recent" listings are before it
    listings: dict[str, list[Listing]] = field(default_factory=dict)
    version: int = 0  # bumped on every change, so views built from it know they are stale
    views: dict[str, Any] = field(default_factory=dict)  # `cached`

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"universe size {self.size!r}: expected one of {', '.join(SIZES)}")
        self.listings = {venue: self._build(venue) for venue in FULL_COUNTS}
        self._index = {v: {x.symbol: x for x in ls} for v, ls in self.listings.items()}
        self._by_base = {v: {x.base: x for x in ls if x.quote != "USDC" or v == "hyperliquid"}
                         for v, ls in self.listings.items()}
        self._by_name = {v: {underlying(x.base)[0]: x.base for x in by.values() if x.active}
                         for v, by in self._by_base.items()}

    # -- lookups ---------------------------------------------------------------------------

    def of(self, venue: str) -> list[Listing]:
        return self.listings[venue]

    def get(self, venue: str, symbol: str) -> Listing | None:
        return self._index[venue].get(symbol)

    def by_base(self, venue: str, base: str) -> Listing | None:
        """The USDT (Hyperliquid: USDC) perpetual of a base coin on a venue."""
        return self._by_base[venue].get(base)

    def same_coin(self, venue: str, coin: str) -> str | None:
        """The base under which a venue lists the coin another venue calls `coin` (kPEPE -> 1000PEPE)."""
        return self._by_name[venue].get(underlying(coin)[0])

    def interval_hours(self, venue: str, base: str) -> int:
        listing = self.by_base(venue, base)
        if listing is None:
            raise KeyError(f"{base} is not listed on {venue}")
        return listing.interval_h

    def weight(self, venue: str, symbol: str) -> float:
        """A symbol's share of the liquidations of a reference coin: 1 for those, 1 % falling with rank
        for the others (the whole long tail about 1.5 reference coins, as on the venues)."""
        listing = self.get(venue, symbol)
        return 1.0 if listing is None or listing.core else 0.01 * math.exp(-listing.rank / 150)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per venue: listings per status (what a test compares with a client's count)."""
        out: dict[str, dict[str, int]] = {}
        for venue, ls in self.listings.items():
            for x in ls:
                out.setdefault(venue, {}).setdefault(x.status, 0)
                out[venue][x.status] += 1
        return out

    # -- run-time listings -----------------------------------------------------------------

    def add(self, venue: str, symbol: str, base: str, quote: str, listed_ms: int, interval_h: int) -> Listing:
        """List a new perpetual from listed_ms on (ValueError if the venue lists that symbol or base)."""
        if symbol in self._index[venue] or base in self._by_base[venue]:
            raise ValueError(f"{venue} already lists {symbol}")
        listing = Listing(venue, symbol, base, quote, listed_ms, interval_h, rank=len(self.listings[venue]), added=True)
        self.listings[venue].append(listing)
        self._index[venue][symbol] = listing
        self._by_base[venue][base] = listing
        self._by_name[venue][underlying(base)[0]] = base
        self.version += 1
        return listing

    # -- generation ------------------------------------------------------------------------

    def _build(self, venue: str) -> list[Listing]:
        quote = "USDC" if venue == "hyperliquid" else "USDT"
        out = [Listing(venue, _symbol(venue, c, quote), c, quote, 0, 0, core=True, rank=i)
               for i, c in enumerate(LISTINGS[venue])]
        if self.size == "full":
            out = self._full(venue, out, quote)
        if venue == "hyperliquid":  # two real delisted coins close the universe built at start
            out += [Listing(venue, c, c, quote, 0, 1, "delisted", rank=len(out) + k) for k, c in enumerate(HL_CLOSING)]
        return out

    def _full(self, venue: str, out: list[Listing], quote: str) -> list[Listing]:
        want = FULL_COUNTS[venue]
        names = coin_names()
        # Hyperliquid lists the most traded coins, Binance and Bybit most of the long tail too.
        share = {"binance": 0.82, "bybit": 0.86, "hyperliquid": 0.62}[venue]
        reach = {"binance": _POOL, "bybit": _POOL, "hyperliquid": 360}[venue]
        extra: list[Listing] = []
        for rank, name in enumerate(names[:reach]):
            if len(out) + len(extra) >= want:
                break
            if _unit(self.seed, "listed", venue, name) < share:
                extra.append(self._generated(venue, name, quote, rank))
        out += extra
        if venue == "binance":  # contracts that must not count: delisting in progress, not trading yet
            unlisted = [n for n in names if _unit(self.seed, "listed", venue, n) >= share]
            out += [self._generated(venue, n, quote, _POOL + k, status="settling") for k, n in enumerate(unlisted[:3])]
            out.append(self._generated(venue, unlisted[3], quote, _POOL + 3, status="pending"))
        elif venue == "bybit":  # Bybit's USDC perpetuals: BTCPERP, ETHPERP, SOLPERP
            out += [Listing(venue, f"{c}PERP", c, "USDC", 1_658_880_000_000 + k * 20 * DAY, 8, rank=k)
                    for k, c in enumerate(("BTC", "ETH", "SOL"))]
        else:  # coins Hyperliquid delisted stay in its universe, interleaved where they were listed
            gone = names[reach : reach + HL_DELISTED]
            for k, name in enumerate(gone):
                at = 6 + (k * 37 + _h(self.seed, "slot", k) % 29) % max(1, len(out) - 6)
                out.insert(at, self._generated(venue, name, quote, reach + k, status="delisted"))
        return out

    def _generated(self, venue: str, name: str, quote: str, rank: int, status: str = "trading") -> Listing:
        spec = coin_spec(self.seed, name)
        base = _prefix(venue, spec.price) + name
        start = VENUE_START_MS[venue]
        u = _unit(self.seed, "born", name)
        if u < 0.03:  # listed within the last four weeks
            listed = self.anchor_ms - int((1 + 27 * u / 0.03) * DAY)
        else:  # spread over the venue's life, the most traded coins earlier
            span = max(DAY, self.anchor_ms - 30 * DAY - start)
            listed = start + int(span * min(1.0, (0.15 + 0.85 * rank / _POOL) * (0.4 + 0.6 * _unit(self.seed, "age", name))))
        listed += int(_unit(self.seed, "lag", venue, name) * 20) * DAY if venue != "binance" else 0
        listed = max(start, min(listed, self.anchor_ms - DAY)) // DAY * DAY
        if status == "pending":
            listed = self.anchor_ms + 2 * DAY
        interval = _pick(INTERVAL_MIX[venue], _unit(self.seed, "interval", venue, name))
        return Listing(venue, _symbol(venue, base, quote), base, quote, listed, interval, status, rank)


def _symbol(venue: str, base: str, quote: str) -> str:
    return base if venue == "hyperliquid" else f"{base}{quote}"


def grid(market: Market, listing: Listing) -> tuple[int, int, float]:
    """(tick exponent, lot-step exponent, a uniform draw) of a generated listing: the tick gives the
    price 4-5 significant figures, the lot step is worth about 0.1-10 USD; the draw lets a venue
    vary how it writes them."""
    universe = universe_of(market)
    price = market.index_price(listing.base, universe.anchor_ms)
    u = _unit(universe.seed, "grid", listing.venue, listing.symbol)
    tick_exp = math.floor(math.log10(price)) - 4 + (u < 0.35)
    step_exp = max(-3, min(3, round(math.log10(1.0 / price) + u - 0.5)))
    return tick_exp, step_exp, u


def power(exp: int, digits: int | None = None) -> str:
    """10**exp written with `digits` decimals (at least its own): power(-2) = "0.01", power(-2, 4) = "0.0100"."""
    own = max(0, -exp)
    return f"{10.0 ** exp:.{max(own, digits or 0)}f}"


def universe_of(market: Market) -> Universe:
    """The market's universe (a default one is listed the first time a venue asks)."""
    if market.universe is None:
        market.universe = Universe(market.seed, anchor_ms=int(time.time() * 1000) // DAY * DAY)
    return market.universe


def cached(market: Market, name: str, key: object, build: Callable[[], T]) -> T:
    """A view of the universe built once per (universe version, key): instrument lists are asked
    for on every request and only change when something is listed (or a quarterly rolls)."""
    universe = universe_of(market)
    hit = universe.views.get(name)
    if hit is not None and hit[0] == (universe.version, key):
        return hit[1]
    value = build()
    universe.views[name] = ((universe.version, key), value)
    return value
