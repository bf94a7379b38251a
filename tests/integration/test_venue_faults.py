"""Rate limits and venue faults, client side: the real adapters' ccxt clients (with their request
budget) against the emulator in its own process, its limits on and its windows scaled down so a
limit is reached in seconds (the request counts are real)."""

import asyncio
import json
import time
import urllib.request

import ccxt
import ccxt.async_support as ccxt_async
import pytest
from loguru import logger

from venues import adapter, adapter_class
from messages.events import Malformed, OpenInterest
from tests.harness import start_emulator

CALLS = 1000
# Scale per venue so that its allowed rate is ~120 calls/s of the call used (weights: Binance
# premiumIndex without symbol 10 of 2400/min, Bybit tickers 1 of 600/5 s, Hyperliquid 20 of 1200/min).
# Hyperliquid: 60 calls/s (a 1 s window), as its tiny scaled window is otherwise at the mercy of
# scheduling jitter on a loaded machine.
SCALE = {"binance": 240 / (60 * 120), "bybit": 1.0, "hyperliquid": 1 / 60}
WEIGHT = {"binance": 10, "bybit": 1, "hyperliquid": 20}


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults-emu")
    # The reference coins (the harness's default): these tests pace ~120 bulk calls/s (windows scaled
    # down), which the emulator must answer faster than that; a full universe's premiumIndex takes tens of ms.
    proc, urls, truth = start_emulator(tmp)
    yield urls
    proc.terminate()
    proc.wait(10)


def control(url: str, path: str, method: str = "POST") -> dict:
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def limits(url: str, scale: float) -> None:
    control(url, f"/_emulator/ratelimit?enabled=1&scale={scale}")  # also resets windows and counters


@pytest.fixture
def warnings():
    """Log lines of WARNING and above, as the actors would write them."""
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"] + " | " + str(m.record["extra"].get("venue"))), level="WARNING")
    yield lines
    logger.remove(sink)


async def call_many(venue: str, url: str, n: int, workers: int = 16, before: str = "") -> tuple[float, object]:
    """n calls by `workers` concurrent callers; `before`: a control path posted right before them."""
    ad = adapter(venue)
    client = ad.client(url)
    try:
        await client.load_markets()
        if before:
            control(url, before)
        symbol = ad.resolve(client.markets, "BTC")["symbol"]
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                rates = await client.fetch_funding_rates([symbol])
                assert symbol in rates

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return time.monotonic() - started, client.budget
    finally:
        await client.close()


# Binance (two limits, weights, the usage header) in the default suite; the others are opt-in
# (-m slow) to keep the default suite short: ~10 s and ~17 s each.
@pytest.mark.parametrize("venue", ["binance", pytest.param("bybit", marks=pytest.mark.slow),
                                   pytest.param("hyperliquid", marks=pytest.mark.slow)])
def test_1000_calls_at_the_venues_allowed_rate_get_no_rate_limit_answer(emu, venue):
    url = emu[venue]
    limits(url, SCALE[venue])
    elapsed, budget = asyncio.run(call_many(venue, url, CALLS))
    state = control(url, "/_emulator/ratelimit", "GET")
    rule = next(iter(state["rules"].values()))
    allowed = rule["limit"] / rule["window_s"]  # weight per second the venue accepts
    ratio = CALLS * WEIGHT[venue] / elapsed / allowed
    print(f"{venue}: {CALLS} calls in {elapsed:.2f} s = {CALLS / elapsed:.0f}/s, {ratio:.3f} of the allowed rate; "
          f"rate-limit answers {state['limited']}, bans {state['banned']}")
    assert state["requests"] >= CALLS and (state["limited"], state["banned"], state["early"]) == (0, 0, 0)
    assert budget.limited == 0
    # Never above the venue's rate; not far below it either (on an idle machine ~0.93, see
    # bench/rate_limits.py; a loaded CI machine may not keep up with 120 calls/s of ccxt).
    assert 0.5 <= ratio <= 1.0, ratio


def test_a_429_with_retry_after_is_waited_out_logged_and_never_banned(emu, warnings):
    """Another program on the IP used the minute's weight: the next call gets 429 + Retry-After;
    no request leaves before it expires (the emulator counts any as `early`), no 418."""
    url = emu["binance"]
    limits(url, 0.05)  # a 3 s "minute"
    started = time.monotonic()
    elapsed, budget = asyncio.run(call_many("binance", url, 40, workers=4,
                                            before="/_emulator/ratelimit/consume?weight=2395&rule=REQUEST_WEIGHT"))
    state = control(url, "/_emulator/ratelimit", "GET")
    assert state["limited"] >= 1 and budget.limited >= 1, "the forced limit was not hit"
    assert state["early"] == 0 and state["banned"] == 0 and budget.bans == 0
    assert time.monotonic() - started >= 1.0  # Retry-After is whole seconds
    assert any("rate limit answer (HTTP 429)" in line and "BINANCE" in line for line in warnings), warnings


def test_a_client_that_ignores_retry_after_is_banned_with_418(emu):
    """The emulator's ban is real, so the test above can fail: plain ccxt without our budget and
    without its own throttle keeps going after a 429 and earns a 418."""
    url = emu["binance"]
    limits(url, 0.05)

    async def hammer() -> list[str]:
        client = ccxt_async.binanceusdm({**adapter_class("binance").sandbox_config(url), "enableRateLimit": False})
        seen = []
        try:
            for _ in range(6):
                await asyncio.sleep(0.1)  # well inside the 1 s Retry-After
                try:
                    await client.fapiPublicGetPing()
                    seen.append("ok")
                except ccxt.DDoSProtection as exc:
                    seen.append("418" if " 418 " in str(exc) else "429")
        finally:
            await client.close()
        return seen

    for _ in range(3):  # the scaled 3 s window may roll over between the consume and the first call
        control(url, "/_emulator/ratelimit/consume?weight=2400&rule=REQUEST_WEIGHT")
        seen = asyncio.run(hammer())
        if seen[0] != "ok":
            break
    assert seen[0] == "429" and "418" in seen, seen
    assert control(url, "/_emulator/ratelimit", "GET")["banned"] >= 1


def test_bybit_10006_is_waited_out_until_the_reset_timestamp(emu, warnings):
    url = emu["bybit"]
    limits(url, 1.0)
    elapsed, budget = asyncio.run(call_many("bybit", url, 20, workers=2, before="/_emulator/ratelimit/consume?weight=600&rule=IP"))
    state = control(url, "/_emulator/ratelimit", "GET")
    assert state["limited"] >= 1 and budget.limited >= 1
    assert state["early"] == 0 and state["banned"] == 0  # never a 403 ban
    assert any("rate limit answer" in line and "BYBIT" in line for line in warnings), warnings


def test_hyperliquid_429_backs_off_without_retry_after(emu):
    url = emu["hyperliquid"]
    limits(url, 0.02)  # a 1.2 s minute
    elapsed, budget = asyncio.run(call_many("hyperliquid", url, 10, workers=2,
                                            before="/_emulator/ratelimit/consume?weight=1200&rule=WEIGHT"))
    state = control(url, "/_emulator/ratelimit", "GET")
    assert state["limited"] >= 1 and budget.limited >= 1 and state["early"] == 0


def test_another_programs_weight_read_from_the_header_slows_us_before_any_429(emu):
    """X-MBX-USED-WEIGHT-1M shows weight we did not send: the budget takes it out of its own."""
    url = emu["binance"]
    limits(url, 0.05)
    elapsed, budget = asyncio.run(call_many("binance", url, 100, workers=8,
                                            before="/_emulator/ratelimit/consume?weight=2000&rule=REQUEST_WEIGHT"))
    state = control(url, "/_emulator/ratelimit", "GET")
    assert state["limited"] == 0 and budget.limited == 0
    assert elapsed > 1.0  # it waited for the window instead of spending the other program's share


def test_maintenance_then_recovery_and_a_delisted_symbol(emu):
    """Maintenance answers are errors the caller backs off from; a delisted symbol is skipped
    with its name (the others still come back); a malformed item becomes a Malformed event."""
    url = emu["binance"]
    control(url, "/_emulator/ratelimit?enabled=0")

    async def scenario() -> dict:
        ad = adapter("binance")
        client = ad.client(url)
        try:
            await client.load_markets()
            markets = [ad.resolve(client.markets, s) for s in ("BTC", "ETH")]
            control(url, "/_emulator/fault?mode=maintenance&count=1")
            with pytest.raises(ccxt.BaseError) as maintenance:  # OperationFailed: the collector backs off
                await ad.fetch_open_interest(client, markets[:1])
            recovered = await ad.fetch_open_interest(client, markets)
            control(url, "/_emulator/delist?symbol=ETHUSDT")
            after_delist = await ad.fetch_open_interest(client, markets)
            again = await ad.fetch_open_interest(client, markets)  # ETH is not even asked for now
            control(url, "/_emulator/delist?symbol=ETHUSDT&relist=1")
            control(url, "/_emulator/fault?mode=malformed&kind=nan&symbol=BTCUSDT&count=1")
            malformed = await ad.fetch_open_interest(client, markets[:1])
            return {"maintenance": str(maintenance.value), "recovered": recovered, "after_delist": after_delist,
                    "again": again, "malformed": malformed}
        finally:
            await client.close()

    out = asyncio.run(scenario())
    faults = control(url, "/_emulator/faults", "GET")
    assert "503" in out["maintenance"] or "Internal error" in out["maintenance"]
    assert {e.instrument_id for e in out["recovered"]} == {"BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE"}
    assert [e.instrument_id for e in out["after_delist"]] == ["BTCUSDT-PERP.BINANCE"]
    assert [e.instrument_id for e in out["again"]] == ["BTCUSDT-PERP.BINANCE"]
    # the delisted symbol was asked for in one poll (openInterest + premiumIndex), not in every poll
    assert faults["counts"]["invalid_symbol"] == 2
    [bad] = out["malformed"]
    assert type(bad) is Malformed and "openInterest='NaN'" in bad.reason and bad.symbol == "BTC/USDT:USDT"
    assert all(type(e) is OpenInterest for e in out["recovered"])


def test_a_timeout_and_a_dropped_connection_are_network_errors(emu):
    url = emu["bybit"]
    control(url, "/_emulator/ratelimit?enabled=0")

    async def scenario() -> list[str]:
        ad = adapter("bybit")
        client = ad.client(url)
        client.timeout = 500  # ms
        seen = []
        try:
            markets = [ad.resolve(await client.load_markets(), "BTC")]
            # aiohttp re-sends an idempotent request once on a dropped keep-alive connection: refuse 2
            for mode in ("timeout&delay=2&count=1", "refuse&count=2"):
                control(url, f"/_emulator/fault?mode={mode}")
                try:
                    await ad.fetch_open_interest(client, markets)
                    seen.append("ok")
                except ccxt.NetworkError as exc:
                    seen.append(type(exc).__name__)
            seen.append(type((await ad.fetch_open_interest(client, markets))[0]).__name__)
        finally:
            await client.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen == ["RequestTimeout", "ExchangeNotAvailable", "OpenInterest"], seen
