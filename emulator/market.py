"""Owns the seeded, deterministic market model shared by the three emulated venues.

Every value is a pure function of ``(seed, coin[, venue], t_ms)``: there is no state, so
the value served "now" and the value a history endpoint will serve later for the same
instant are identical, and two emulators started with the same seed agree.

Shape of the series (why: realistic enough for collectors and validators, cheap to compute):
- slow sinusoids (days / hours) with seed-derived phases give trends and cycles;
- smooth "value noise" (hashed random value per time bucket, smoothstep-interpolated
  between buckets) at several scales (hour, minute, second) gives random-walk-like wiggles
  that are continuous in time, so a 1 s step moves values by a tiny amount;
- funding rates depend only on the settlement instant, so a period has one rate.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from functools import lru_cache

SEC = 1_000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

VENUES: tuple[str, ...] = ("binance", "bybit", "hyperliquid")


@dataclass(frozen=True, slots=True)
class CoinSpec:
    price: float  # reference USD price around which the series moves
    oi: float  # reference open interest in coins (Binance-sized)
    vol: float  # scales relative swings (alts move more than BTC)


COIN_SPECS: dict[str, CoinSpec] = {
    "BTC": CoinSpec(price=95_000.0, oi=80_000.0, vol=1.0),
    "ETH": CoinSpec(price=3_300.0, oi=1_500_000.0, vol=1.3),
    "SOL": CoinSpec(price=180.0, oi=8_000_000.0, vol=1.7),
    "XRP": CoinSpec(price=2.3, oi=300_000_000.0, vol=1.6),
    "DOGE": CoinSpec(price=0.32, oi=5_000_000_000.0, vol=2.0),
    # HYPE: listed on Bybit (1h funding) and Hyperliquid only, so "not listed on one venue"
    # (Hyperliquid's predictedFundings then carries ["BinPerp", null]) is exercised too.
    "HYPE": CoinSpec(price=25.0, oi=20_000_000.0, vol=2.4),
}
COINS: tuple[str, ...] = tuple(COIN_SPECS)  # the reference coins; the universe adds hundreds (universe.py)

# The reference coins each venue lists as a USDT/USDC-margined perpetual (`emulator/universe.py`
# adds the rest of a realistic universe).
LISTINGS: dict[str, tuple[str, ...]] = {
    "binance": ("BTC", "ETH", "SOL", "XRP", "DOGE"),
    "bybit": ("BTC", "ETH", "SOL", "XRP", "DOGE", "HYPE"),
    "hyperliquid": ("BTC", "ETH", "SOL", "XRP", "DOGE", "HYPE"),
}

# Venue size relative to the reference open interest (Hyperliquid's BTC OI ~ 1/3 of Binance's).
_OI_SHARE: dict[str | None, float] = {None: 1.0, "binance": 1.0, "bybit": 0.65, "hyperliquid": 0.35}

# Funding interval in hours; anything not listed here: 8h on Binance/Bybit, 1h on Hyperliquid.
_INTERVAL_OVERRIDES_H: dict[tuple[str, str], int] = {
    ("binance", "SOL"): 4,
    ("bybit", "DOGE"): 4,
    ("bybit", "HYPE"): 1,
}
_DEFAULT_INTERVAL_H: dict[str, int] = {"binance": 8, "bybit": 8, "hyperliquid": 1}
# Past interval changes: (from_ms, until_ms, hours) windows in which another interval applied.
# Binance DOGE paid every 4 h from 2026-10-01 to 2026-11-10 (UTC midnights), 8 h before and after.
INTERVAL_WINDOWS: dict[tuple[str, str], tuple[tuple[int, int, int], ...]] = {
    ("binance", "DOGE"): ((1_790_812_800_000, 1_794_268_800_000, 4),),
}

# Decimals each venue publishes funding rates with (Binance "0.00010000", Bybit "-0.000212",
# Hyperliquid "-0.0000015186"); the model returns the already-rounded, published value.
_RATE_DECIMALS: dict[str, int] = {"binance": 8, "bybit": 6, "hyperliquid": 10}
RATE_MIN, RATE_MAX = -0.0005, 0.001  # clamp of the 8h-equivalent rate

_MASK = (1 << 64) - 1

# (period_ms, amplitude) of the sinusoids and (bucket_ms, amplitude) of the noise octaves,
# all in log space (0.01 = ~1 %), multiplied by CoinSpec.vol.
_PX_WAVES = ((7 * DAY, 0.06), (DAY, 0.015), (3 * HOUR, 0.005))
_PX_OCTAVES = ((HOUR, 0.006), (MIN, 0.0012), (SEC, 0.00015))
_OI_WAVES = ((3 * DAY, 0.08), (12 * HOUR, 0.03), (HOUR, 0.006))
_OI_OCTAVES = ((15 * MIN, 0.01), (MIN, 0.002), (SEC, 0.0003))
_FR_WAVES = ((5 * DAY, 0.6), (36 * HOUR, 0.35))


def _mix(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-distributed 64-bit hash step."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


@lru_cache(maxsize=65_536)
def _key(*names: str | None) -> int:
    """Stable 64-bit key for a name tuple (Python's hash() is randomized per process)."""
    raw = "|".join("" if n is None else n for n in names).encode()
    return _mix(zlib.crc32(raw) | (zlib.adler32(raw) << 32))


# A coin traded in multiples: "1000PEPE", "10000LADYS", "1000000MOG", "1MBABYDOGE" (Binance, Bybit),
# "kPEPE" (Hyperliquid). Longest prefix first.
_MULTIPLES = (("1000000", 1_000_000), ("10000", 10_000), ("1000", 1_000), ("1M", 1_000_000))


def underlying(coin: str) -> tuple[str, int]:
    """(the coin, the multiple) a venue's base stands for: "1000PEPE" -> ("PEPE", 1000)."""
    if coin in COIN_SPECS:
        return coin, 1
    if coin[:1] == "k" and coin[1:2].isupper():
        return coin[1:], 1000
    for prefix, mult in _MULTIPLES:
        rest = coin[len(prefix):]
        if coin.startswith(prefix) and rest[:1].isalpha() and rest[:1].isupper():
            return rest, mult
    return coin, 1


def coin_spec(seed: int, coin: str) -> CoinSpec:
    """A coin's reference values: the table's for the reference coins, otherwise drawn from the seed
    and its name (prices from 1e-8 to thousands of USD, open interest worth 2M to 500M USD)."""
    if coin in COIN_SPECS:
        return COIN_SPECS[coin]
    u = [(_mix(_key("spec", coin, str(i)) ^ _mix(seed & _MASK)) >> 11) / (1 << 53) for i in range(4)]
    lo, hi = (-7.0, -4.5) if u[0] < 0.03 else (-2.3, 0.5) if u[0] < 0.6 else (0.5, 1.7) if u[0] < 0.9 else (1.7, 3.5)
    price = 10 ** (lo + (hi - lo) * u[1])
    value = 10 ** (6.3 + 2.4 * u[2] ** 1.5)
    return CoinSpec(price=price, oi=value / price, vol=1.6 + 1.4 * u[3])


class Market:
    """The market of one seed. Methods are pure: no caching of time-dependent values.

    `universe` (set by whoever lists more than the reference coins, `emulator/universe.py`) answers
    `interval_hours(venue, coin)` for every other listed coin."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._seed_key = _mix(self.seed & _MASK)
        self.universe = None  # emulator.universe.Universe, when one is listed
        self._coins: dict[str, tuple[str, int, CoinSpec]] = {}
        self._keyed: dict[int, int] = {}
        self._phases: dict[tuple[int, int], float] = {}

    def coin(self, coin: str) -> tuple[str, int, CoinSpec]:
        """(underlying coin, multiple, its spec) of a venue's base coin."""
        found = self._coins.get(coin)
        if found is None:
            name, mult = underlying(coin)
            found = self._coins[coin] = (name, mult, coin_spec(self.seed, name))
        return found

    # -- primitives ---------------------------------------------------------------------

    def _uniform(self, key: int, bucket: int) -> float:
        """Hashed uniform value in [-1, 1) for (seed, key, bucket)."""
        keyed = self._keyed.get(key)
        if keyed is None:  # time-independent: computed once per key (hundreds of coins make it count)
            keyed = self._keyed[key] = _mix(self._seed_key ^ key)
        h = _mix(keyed ^ (bucket & _MASK))
        return (h >> 11) * (2.0 / (1 << 53)) - 1.0

    def _value_noise(self, key: int, t_ms: int, bucket_ms: int) -> float:
        """Continuous noise in [-1, 1]: random values per bucket, smoothstep in between."""
        q, r = divmod(int(t_ms), bucket_ms)
        f = r / bucket_ms
        f = f * f * (3.0 - 2.0 * f)
        a = self._uniform(key, q)
        return a + (self._uniform(key, q + 1) - a) * f

    def _octaves(self, key: int, t_ms: int, octaves: tuple[tuple[int, float], ...]) -> float:
        return sum(amp * self._value_noise(key + i, t_ms, b) for i, (b, amp) in enumerate(octaves))

    def _waves(self, key: int, t_ms: int, waves: tuple[tuple[int, float], ...]) -> float:
        total = 0.0
        for i, (period, amp) in enumerate(waves):
            phase = self._phases.get((key, i))
            if phase is None:
                phase = self._phases[(key, i)] = math.pi * self._uniform(key ^ 0x5A5A, i)
            total += amp * math.sin(2.0 * math.pi * (t_ms % period) / period + phase)
        return total

    # -- public model -------------------------------------------------------------------

    def index_price(self, coin: str, t_ms: int) -> float:
        """Spot index (oracle) price in USD: shared by all venues (of `mult` coins for a 1000PEPE)."""
        name, mult, spec = self.coin(coin)
        k = _key("px", name)
        x = self._waves(k, t_ms, _PX_WAVES) + self._octaves(k, t_ms, _PX_OCTAVES)
        return spec.price * mult * math.exp(spec.vol * x)

    def mark_price(self, coin: str, t_ms: int, venue: str | None = None) -> float:
        """Mark price: index times a small venue-specific basis (a few bps)."""
        k = _key("basis", coin, venue)
        basis = 0.0001 + 0.0003 * self._value_noise(k, t_ms, 20 * SEC) + 0.0002 * self._value_noise(
            k + 1, t_ms, 5 * MIN
        )
        return self.index_price(coin, t_ms) * (1.0 + basis)

    def last_price(self, coin: str, t_ms: int, venue: str | None = None) -> float:
        """Last trade price: the mark plus a couple of bps of trade noise."""
        noise = self._value_noise(_key("last", coin, venue), t_ms, 3 * SEC)
        return self.mark_price(coin, t_ms, venue) * (1.0 + 0.0002 * noise)

    def open_interest(self, coin: str, t_ms: int, venue: str | None = None) -> float:
        """Open interest in coins (base-asset units). Venues share the slow trend, not the noise."""
        name, mult, spec = self.coin(coin)
        x = self._waves(_key("oi", name), t_ms, _OI_WAVES)
        x += self._octaves(_key("oi", name, venue), t_ms, _OI_OCTAVES)
        return spec.oi / mult * _OI_SHARE[venue] * math.exp(0.5 * spec.vol * x)

    def volume_24h(self, coin: str, t_ms: int, venue: str | None = None) -> float:
        """Rolling 24h traded volume in coins (about 2-3x the open interest)."""
        k = _key("vol", coin, venue)
        return self.open_interest(coin, t_ms, venue) * (2.5 + 0.8 * self._value_noise(k, t_ms, HOUR))

    def funding_interval_hours(self, venue: str, coin: str, t_ms: int) -> int:
        """Funding interval in force at t_ms (see INTERVAL_WINDOWS for past changes)."""
        if coin not in LISTINGS[venue]:
            if self.universe is None:
                raise KeyError(f"{coin} is not listed on {venue}")
            return self.universe.interval_hours(venue, coin)
        for start_ms, until_ms, hours in INTERVAL_WINDOWS.get((venue, coin), ()):
            if start_ms <= t_ms < until_ms:
                return hours
        return _INTERVAL_OVERRIDES_H.get((venue, coin), _DEFAULT_INTERVAL_H[venue])

    def next_funding_ms(self, venue: str, coin: str, t_ms: int) -> int:
        """First settlement strictly after t_ms (settlements are aligned to UTC midnight)."""
        iv = self.funding_interval_hours(venue, coin, t_ms) * HOUR
        return (int(t_ms) // iv + 1) * iv

    def funding_rate(self, venue: str, coin: str, settlement_ms: int) -> float:
        """Rate paid at one settlement, per interval, rounded as the venue publishes it.

        An 8h-equivalent rate around the usual 0.01 % baseline (shared coin sentiment plus a
        venue-specific part, clamped to [-0.05 %, +0.1 %]) is scaled to the interval, so a
        Hyperliquid hourly rate is ~1/8 of an 8h rate, like the real ones.
        """
        iv_h = self.funding_interval_hours(venue, coin, settlement_ms)
        name = self.coin(coin)[0]
        shared = self._waves(_key("fr", name), settlement_ms, _FR_WAVES)
        shared += 0.3 * self._value_noise(_key("fr", name), settlement_ms, 8 * HOUR)
        own = 0.35 * self._value_noise(_key("fr", coin, venue), settlement_ms, iv_h * HOUR)
        r8 = min(RATE_MAX, max(RATE_MIN, 0.0001 + 0.00035 * (shared + own)))
        return round(r8 * iv_h / 8.0, _RATE_DECIMALS[venue])
