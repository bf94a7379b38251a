"""Requests per second achieved per venue against the venue's allowed rate, through the adapters'
ccxt clients and their request budget, with the emulator enforcing the venues' real limits.

    .venv/bin/python bench/rate_limits.py [--calls 1000] [--target 100]

The emulator's windows are scaled so that the allowed rate of the call used is `--target` calls
per second (the count of calls is real): Binance `premiumIndex` without symbol (weight 10 of
2400/min), Bybit `tickers` (1 of 600/5 s), Hyperliquid `metaAndAssetCtxs` (20 of 1200/min).
Figures: calls, seconds, calls/s, the ratio to the allowed rate (the budget aims at ~0.9: 5 %
burst and 2 % margin kept back, plus 0.1 s of arrival jitter per window, which weighs on the
scaled-down windows only), and the rate-limit answers (must be 0). No plain-ccxt baseline here:
ccxt's throttle runs on real time, so against scaled windows its figure would mean nothing (at
real scale it sends Binance's weight-10 `premiumIndex` at cost 1, 5x the venue's limit).
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

import ccxt.async_support as ccxt_async  # noqa: E402

from venues import adapter  # noqa: E402
from tests.harness import start_emulator  # noqa: E402

WEIGHT = {"binance": 10, "bybit": 1, "hyperliquid": 20}
LIMIT = {"binance": (2400, 60.0), "bybit": (600, 5.0), "hyperliquid": (1200, 60.0)}


def control(url: str, path: str, method: str = "POST") -> dict:
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


async def run(venue: str, url: str, calls: int, ours: bool, workers: int = 16) -> tuple[float, int]:
    if ours:
        ad = adapter(venue)
        client = ad.client(url)
    else:  # what a plain ccxt script does: ccxt's own throttle, no budget
        ad = adapter(venue)
        config = ad.sandbox_config(url)
        client = getattr(ccxt_async, ad.ccxt_id)({**config, "options": {**config["options"], **ad.options}})
    errors = 0
    try:
        await client.load_markets()
        symbol = ad.resolve(client.markets, "BTC")["symbol"]
        left = calls

        async def worker() -> None:
            nonlocal left, errors
            while left > 0:
                left -= 1
                try:
                    await client.fetch_funding_rates([symbol])
                except Exception:  # noqa: BLE001 - counted: a rate-limit answer the caller saw
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return time.monotonic() - started, errors
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--target", type=float, default=100.0, help="allowed calls/s after scaling the windows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, urls, _ = start_emulator(Path(tmp))
        try:
            print(f"{'venue':<12} {'client':<12} {'calls':>6} {'s':>7} {'calls/s':>8} {'allowed/s':>9} {'ratio':>6} {'429s':>5} {'bans':>5} {'errors':>6}")
            for venue in ("binance", "bybit", "hyperliquid"):
                limit, window = LIMIT[venue]
                scale = limit / WEIGHT[venue] / args.target / window
                for ours in (True,):
                    control(urls[venue], f"/_emulator/ratelimit?enabled=1&scale={scale}")
                    elapsed, errors = asyncio.run(run(venue, urls[venue], args.calls, ours))
                    state = control(urls[venue], "/_emulator/ratelimit", "GET")
                    rate = args.calls / elapsed
                    print(f"{venue:<12} {'budget' if ours else 'plain ccxt':<12} {args.calls:>6} {elapsed:>7.2f} {rate:>8.1f} "
                          f"{args.target:>9.1f} {rate / args.target:>6.3f} {state['limited']:>5} {state['banned']:>5} {errors:>6}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
