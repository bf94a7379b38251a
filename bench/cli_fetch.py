"""Cold CLI fetch of current open interest for one symbol, process start to output, against a
plain ccxt script doing the same fetch; both against the same running emulator.

    .venv/bin/python bench/cli_fetch.py [--runs 5] [--venue binance]

SC-001 asks for < 5 s. The plain script is the floor: Python start, ccxt import, load_markets,
one fetch. The CLI adds click, the project's modules, normalization and the table.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness import start_emulator  # noqa: E402

PLAIN = """
import asyncio, json, sys
import ccxt.async_support as ccxt
from venues import adapter_class
venue, url, symbol = sys.argv[1], sys.argv[2], sys.argv[3]
async def main():
    ad = adapter_class(venue)
    ex = getattr(ccxt, ad.ccxt_id)(ad.sandbox_config(url))
    try:
        await ex.load_markets()  # hyperliquid.fetch_open_interest needs it done first
        oi = await ex.fetch_open_interest(symbol)
        print(oi["symbol"], oi["openInterestAmount"])
    finally:
        await ex.close()
asyncio.run(main())
"""
SYMBOL = {"binance": "BTC/USDT:USDT", "bybit": "BTC/USDT:USDT", "hyperliquid": "BTC/USDC:USDC"}


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--venue", default="binance", choices=sorted(SYMBOL))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, urls, _ = start_emulator(Path(tmp))
        try:
            emulator_file = Path(tmp) / "emulator.json"
            cli = [sys.executable, "-m", "cli", "oi", "BTC", "-v", args.venue, "--emulator", str(emulator_file)]
            plain = [sys.executable, "-c", PLAIN, args.venue, urls[args.venue], SYMBOL[args.venue]]
            timed(cli), timed(plain)  # warm the OS file cache: "cold" means a new process, not a cold disk
            ours = [timed(cli) for _ in range(args.runs)]
            base = [timed(plain) for _ in range(args.runs)]
        finally:
            proc.terminate()
            proc.wait(5)
    o, b = statistics.median(ours), statistics.median(base)
    print(f"venue {args.venue}, {args.runs} runs each, median (min-max)")
    print(f"derivs oi BTC (CLI)   {o:6.3f} s  ({min(ours):.3f}-{max(ours):.3f})")
    print(f"plain ccxt script     {b:6.3f} s  ({min(base):.3f}-{max(base):.3f})")
    print(f"ratio CLI / plain: {o / b:.2f}x   (SC-001 target: < 5 s)")


if __name__ == "__main__":
    main()
