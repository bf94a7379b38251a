"""30 days of 5-minute open-interest history per venue (where it exists), against the emulator:
`derivs history oi` (actors/history + CatalogStore) vs a plain ccxt loop (ccxt's own
`paginate`) that writes with NautilusTrader's `ParquetDataCatalog.write_data`.

    .venv/bin/python bench/history_30d.py [--days 30] [--symbol BTC]

Figures: wall time, requests served by the emulator (its /_emulator/stats), rows stored, and the
ratio baseline / ours. Hyperliquid is listed as "no history" (its API has none). The emulator
runs in its own process with ccxt's default throttling on, as against the real venues, so wall
time is dominated by the request count x the venues' rate limits (Binance 50 ms, Bybit 100 ms).
Binance keeps 30 days: the window starts a few minutes inside the retention.
"""

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.history import run_history  # noqa: E402
from tests.harness import start_emulator  # noqa: E402

NS = 1_000_000_000
MS = 1_000_000


def requests(url: str) -> int:
    with urllib.request.urlopen(url + "/_emulator/stats", timeout=5) as r:
        return json.load(r)["total"]


async def baseline(venue: str, url: str, symbol: str, since_ms: int, until_ms: int, catalog: Path) -> int:
    """What a user would write with ccxt and Nautilus alone."""
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.persistence.catalog import ParquetDataCatalog

    from venues import adapter
    from messages.nautilus import OpenInterest

    ad = adapter(venue)
    client = ad.client(url)
    try:
        markets = await client.load_markets()
        market = ad.resolve(markets, symbol)
        rows = await client.fetch_open_interest_history(market["symbol"], "5m", since_ms, None,
                                                        {"paginate": True, "paginationCalls": 1000, "until": until_ms})
    finally:
        await client.close()
    iid = InstrumentId.from_str(ad.instrument_id(market))
    seen, data = set(), []
    for r in sorted(rows, key=lambda r: r["timestamp"]):
        if r["timestamp"] in seen or not since_ms <= r["timestamp"] <= until_ms:
            continue
        seen.add(r["timestamp"])
        ts = r["timestamp"] * MS
        data.append(OpenInterest(instrument_id=iid, open_interest=float(r["openInterestAmount"] or 0.0),
                                 open_interest_value=float(r["openInterestValue"] or 0.0), ts_event=ts, ts_init=ts))
    ParquetDataCatalog(str(catalog)).write_data(data)
    return len(data)


# The limit that paces OI history (emulator/ratelimit.py, venues/budget.py): requests per window.
LIMITS = {"binance": (1000, 300.0), "bybit": (600, 5.0)}  # /futures/data/*; Bybit's per-IP limit
LIMIT_TEXT = {"binance": "/futures/data: 1,000 requests / 5 min", "bybit": "600 requests / 5 s per IP"}


def min_seconds(venue: str, requests: int) -> float:
    """The least time the venue's limit allows for `requests` (a full window's worth goes at once)."""
    per_window, window_s = LIMITS[venue]
    return max(0, requests - per_window) / per_window * window_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--symbol", default="BTC")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        proc, urls, _ = start_emulator(Path(tmp), "binance,bybit,hyperliquid", 7, "--rate-limits")  # the venues' real limits
        try:
            now = time.time_ns()
            until = now // (300 * NS) * (300 * NS)
            since = until - int(args.days * 86_400 * NS) + 600 * NS  # inside Binance's 30 days
            print(f"{args.days:g} days of 5-minute OI, {args.symbol}; emulator on loopback enforcing the venues' limits")
            print(f"{'venue':<12}{'ours s':>8}{'req':>6}{'rows':>7}{'ccxt+write_data s':>19}{'req':>6}{'rows':>7}{'ratio':>7}")
            for venue in ("binance", "bybit", "hyperliquid"):
                if venue == "hyperliquid":
                    print(f"{venue:<12}  no OI history in the venue's API (the mesh records it by polling)")
                    continue
                url = urls[venue]
                r0 = requests(url)
                t0 = time.perf_counter()
                s = asyncio.run(run_history("oi", venue, args.symbol, since, until, "5m", url, str(Path(tmp) / "ours"),
                                            False))
                ours_s = time.perf_counter() - t0
                r1 = requests(url)
                assert s.error is None, s.error
                t0 = time.perf_counter()
                n = asyncio.run(baseline(venue, url, args.symbol, since // MS, until // MS, Path(tmp) / f"base-{venue}"))
                base_s = time.perf_counter() - t0
                r2 = requests(url)
                print(f"{venue:<12}{ours_s:>8.2f}{r1 - r0:>6}{s.written:>7}{base_s:>19.2f}{r2 - r1:>6}{n:>7}"
                      f"{base_s / ours_s:>7.2f}")
                floor = min_seconds(venue, r1 - r0)
                print(f"{'':<12}the limits allow these {r1 - r0} requests in {floor:.1f} s "
                      f"({LIMIT_TEXT[venue]}): ours takes {ours_s - floor:.2f} s more (round trips, parsing, writing)")
            print("ours: requests include load_markets (+ Bybit's mark-price klines for the USD value, which the "
                  "baseline stores as 0);\nbaseline time includes importing nautilus_trader on first use.")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
