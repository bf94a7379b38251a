"""A user's Nautilus quotes and our catalog run together in one BacktestEngine.

Our instruments come through the real path from real listings (Binance exchangeInfo, Bybit
instruments-info: replay emulator -> ccxt -> venue adapter -> CatalogStore), with open interest
and funding rows beside them. The quotes are shaped as NautilusTrader's own adapters make them:
Binance bookTicker frames parsed by Nautilus's `BinanceQuoteData` (prices keep the decimals the
venue writes: BTCUSDT's `pricePrecision` 2 of the same exchangeInfo), Bybit quotes made with the
precisions of the instrument Nautilus's own Bybit client builds from the same listing. Nautilus
refuses a quote whose precision differs from the instrument's
(`invalid tick.bid_price.precision=2 did not match instrument.price_precision=1`, what the old
definitions from ccxt's float tick 0.1 caused), so the run completing with every row delivered is
the proof. The engine runs in a subprocess (`tests/nautilus/backtest_with_quotes.py`).
"""

import asyncio
import json
import sys
from pathlib import Path

from storage.store import CatalogStore
from messages.events import FundingRate, OpenInterest
from tests.fixtures import real
from tests.nautilus.listings import binance_answers, bybit_answers, load_events, serve

REPO = Path(__file__).resolve().parents[2]
T0 = 1_735_776_000_000_000_000  # 2025-01-02T00:00:00Z, after both listings were recorded
MIN = 60 * 1_000_000_000
N = 30  # quotes per instrument, one a minute
IDS = ("BTCUSDT-PERP.BINANCE", "BTCUSDT-LINEAR.BYBIT")


def _binance_frames() -> list[dict]:
    """bookTicker frames for BTCUSDT, numbers written as Binance writes them for this symbol."""
    btc = next(s for s in real.load("binance", "exchange_info")["symbols"] if s["symbol"] == "BTCUSDT")
    pp, qp = btc["pricePrecision"], btc["quantityPrecision"]  # 2, 3
    frames = []
    for i in range(N):
        ms = (T0 + i * MIN) // 1_000_000
        bid = 94_000 + i * 0.1
        frames.append({"e": "bookTicker", "u": 400_900_217 + i, "E": ms + 2, "T": ms, "s": "BTCUSDT",
                       "b": f"{bid:.{pp}f}", "B": f"{1.5 + i / 1000:.{qp}f}", "a": f"{bid + 0.1:.{pp}f}",
                       "A": f"{0.25:.{qp}f}"})
    return frames


def _data_rows(instrument_id: str, venue: str) -> list:
    rows = []
    for i in range(0, N, 5):
        ts = T0 + i * MIN + 1
        rows.append(OpenInterest(venue=venue, symbol="BTC/USDT:USDT", instrument_id=instrument_id, ts_event=ts, ts_recv=ts,
                                 open_interest=80_000.0 + i, open_interest_value=(80_000.0 + i) * 94_000.0))
        rows.append(FundingRate(venue=venue, symbol="BTC/USDT:USDT", instrument_id=instrument_id, ts_event=ts, ts_recv=ts,
                                rate=0.0001, interval_minutes=480, next_funding_ns=T0 + 8 * 60 * MIN))
    return rows


def test_nautilus_shaped_quotes_and_our_catalog_run_in_one_backtest(tmp_path):
    async def scenario() -> tuple[int, str, str]:
        answers, ts = binance_answers()
        binance = await serve(tmp_path / "binance", "binance", answers, ts)
        answers, ts_bybit = bybit_answers()
        bybit = await serve(tmp_path / "bybit", "bybit", answers, ts_bybit)
        try:
            _, ours = await load_events(binance.urls["binance"], "binance", ts)
            _, ours_bybit = await load_events(bybit.urls["bybit"], "bybit", ts_bybit)
            events = [e for e in ours + ours_bybit if e.instrument_id in IDS]
            assert sorted(e.instrument_id for e in events) == sorted(IDS)
            CatalogStore(tmp_path / "catalog").write(events + _data_rows(IDS[0], "BINANCE") + _data_rows(IDS[1], "BYBIT"))
            quotes = tmp_path / "quotes.json"
            quotes.write_text(json.dumps({
                "binance": _binance_frames(),
                "bybit": [[T0 + i * MIN, 94_000.5 + i * 0.1, 94_000.6 + i * 0.1, 2.0, 1.25] for i in range(N)],
                "bybit_url": bybit.urls["bybit"],  # Nautilus's own Bybit client reads the same listing
            }))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.nautilus.backtest_with_quotes", str(tmp_path / "catalog"), str(quotes),
                cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
            return proc.returncode, out.decode(), err.decode()
        finally:
            await binance.close()
            await bybit.close()

    code, out, err = asyncio.run(scenario())
    assert code == 0, err[-3000:]
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts == {
        "quotes": {iid: N for iid in IDS},
        "open_interest": {iid: N // 5 for iid in IDS},
        "funding_rate": {iid: N // 5 for iid in IDS},
    }
