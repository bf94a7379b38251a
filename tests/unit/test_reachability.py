"""When a collector counts as unreachable (actors/reachability.py), and what the coordinator says
when no venue answers (the no-network case, which the integration tests cannot reach offline)."""

import asyncio
from pathlib import Path

import ccxt
import pytest
from loguru import logger

from actors.coordinator import no_venue_message
from actors.reachability import UNREACHABLE_AFTER, Reachability
from actors.runtime import Stats
from actors.topology import SandboxConfig, Topology, VenueConfig
from messages.control import ActorStatus


async def _fail(exc: Exception) -> None:
    raise exc


async def _answer() -> str:
    return "markets"


def _calls(reach: Reachability, *outcomes: Exception | None) -> None:
    async def run() -> None:
        for outcome in outcomes:
            try:
                await reach.call(_answer() if outcome is None else _fail(outcome))
            except Exception as exc:  # noqa: BLE001 - the call re-raises what the venue call raised
                assert exc is outcome
    asyncio.run(run())


def test_unreachable_after_calls_in_a_row_without_an_answer_and_clear_on_any_answer():
    stats = Stats()
    reach = Reachability(stats, logger)
    refused = ccxt.ExchangeNotAvailable("bybit GET http://127.0.0.1:1/v5/market/tickers")
    _calls(reach, *[refused] * (UNREACHABLE_AFTER - 1))
    assert stats.unreachable_since_ns == 0  # one lost request is not an outage
    _calls(reach, ccxt.RequestTimeout("bybit GET timed out"))
    since = stats.unreachable_since_ns
    assert since > 0 and stats.last_error == "RequestTimeout: bybit GET timed out"
    _calls(reach, ccxt.RateLimitExceeded("429"), ccxt.DDoSProtection("418 banned"))  # answers without data: no change
    assert stats.unreachable_since_ns == since and stats.last_error == "RequestTimeout: bybit GET timed out"
    _calls(reach, refused)
    assert stats.unreachable_since_ns == since  # since the first failure, not the last
    _calls(reach, ccxt.BadSymbol("unknown symbol"))  # the venue answered, with an error: reachable
    assert stats.unreachable_since_ns == 0 and stats.last_error == ""
    _calls(reach, refused, refused, None)
    assert stats.unreachable_since_ns == 0 and stats.last_error == ""


@pytest.mark.parametrize("sandbox, start_emulator, expected", [
    (False, True, "no network to the exchanges? `bin/launch --sandbox topology.yaml` runs this mesh against the built-in "
                  "emulated venues"),
    (True, True, "the emulator this mesh started does not answer: see run/logs"),
    (True, False, "no emulator answers at the URLs of run/emulator.json"),
])
def test_the_log_line_when_no_venue_answers_names_each_error_and_what_to_do(sandbox, start_emulator, expected):
    topo = Topology(venues=[VenueConfig(venue="binance", symbols=["BTC"])], sandbox=SandboxConfig(start_emulator=start_emulator))
    collectors = [ActorStatus(name=f"collector.{v}", state="unreachable", pid=1, uptime_s=3.0, restarts=0, events_in=0,
                              events_out=0, queue_depth=0, last_event_ns=0, unreachable_since_ns=1, last_error=f"{v} refused")
                  for v in ("binance", "bybit")]
    line = no_venue_message(collectors, topo, Path("topology.yaml"), sandbox=sandbox)
    assert line.startswith("no venue can be reached, nothing is collected (collector.binance: binance refused; "
                           "collector.bybit: bybit refused); ")
    assert expected in line and line.endswith("The collectors keep retrying.")
