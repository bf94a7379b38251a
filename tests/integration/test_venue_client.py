"""The project's ccxt client subclass (`venues/client.py`) with the real ccxt.pro client against the
emulator's WebSockets on loopback: the raw-message hook sees every message first, and what it
keeps never reaches ccxt's own parser; what it lets through does (compared with the emulator's
ground truth of what it pushed)."""

import asyncio
import contextlib
import time

from emulator.ground_truth import load_ground_truth
from emulator.server import start_emulator
from venues import adapter
from venues.recording import load


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _is_liquidation(message) -> bool:
    return isinstance(message, dict) and str(message.get("topic", "")).startswith("allLiquidation.")


def test_on_raw_message_sees_every_message_first_and_keeps_what_it_takes_from_ccxt(tmp_path):
    truth_path = tmp_path / "truth.jsonl"

    async def scenario() -> tuple[list, list, int, int]:
        emu = await start_emulator(venues=["bybit"], ground_truth=truth_path, liquidation_rate=40.0)
        taken: list = []  # liquidation messages the hook kept from ccxt
        passed: list = []  # everything else it saw (the subscription answer, pongs)

        def hook(ws_client, message) -> bool:
            (taken if _is_liquidation(message) else passed).append(message)
            return _is_liquidation(message)

        ad = adapter("bybit")
        keeping = ad.client(emu.urls["bybit"], pro=True, on_raw_message=hook, record_dir=str(tmp_path / "rec"))
        plain = ad.client(emu.urls["bybit"], pro=True)  # no hook: ccxt parses every message
        watches = []
        try:
            for client in (keeping, plain):
                await client.load_markets()
                watches.append(asyncio.create_task(client.watch_liquidations("BTC/USDT:USDT")))
            await _until(lambda: len(taken) >= 5 and len(plain.liquidations or []) >= 5, 20, "liquidations on both clients")
            keeping.record_frame("ws://recorded", taken[0])  # the stream records what it keeps this way
            return taken, passed, len(keeping.liquidations or []), len(plain.liquidations or [])  # ccxt's cache
        finally:
            for w in watches:
                w.cancel()
                with contextlib.suppress(BaseException):
                    await w
            await keeping.close()
            await plain.close()
            await emu.close()

    taken, passed, kept_cache, plain_cache = asyncio.run(scenario())
    pushed = {(r["raw_symbol"], r["ts_ms"], r["qty"], r["price"]) for r in load_ground_truth(truth_path)
              if r.get("kind") == "liquidation" and r["venue"] == "BYBIT"}
    rows = [(row["s"], row["T"], float(row["v"]), float(row["p"])) for m in taken for row in m["data"]]
    assert rows and set(rows) <= pushed  # the hook saw the venue's own frames
    assert any(m.get("op") == "subscribe" for m in passed)  # the subscription answer went on to ccxt
    assert kept_cache == 0 and plain_cache >= 5  # what the hook took never reached ccxt's parser
    [line] = [x for x in load(tmp_path / "rec" / "bybit.jsonl") if x.get("kind") == "ws"]
    assert line["message"] == taken[0] and line["url"] == "ws://recorded"
