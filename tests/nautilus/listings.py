"""Real listing payloads through the project's real path, for the instrument tests.

A recording of the answers (`venues/recording.Recorder`'s format) is served by the replay
emulator on 127.0.0.1 (`emulator/replay.py`); the venue's real ccxt client (the adapter's own,
`VenueAdapter.client`) loads its markets from it and the adapter builds the `Instrument` events.
"""

from pathlib import Path

import msgspec

from venues.recording import Recorder
from venues import ADAPTERS
from emulator.replay import Replay
from emulator.server import start_replay
from tests.fixtures import real

BYBIT_LISTING = "/v5/market/instruments-info?category=linear&limit=1000"  # what ccxt asks (and Nautilus)


def record(directory: Path, venue: str, answers: list[tuple[str, str, dict | None, object]], ts_ns: int) -> Path:
    """Write (method, path, request JSON or None, answer payload) as a recording received at ts_ns."""
    recorder = Recorder(directory, venue)
    for method, path, request, payload in answers:
        body = None if request is None else msgspec.json.encode(request)
        recorder.write(200, f"https://venue.invalid{path}", method, {"Content-Type": "application/json"},
                       msgspec.json.encode(payload).decode(), None, body, ts_ns=ts_ns)
    recorder.close()
    return directory


def binance_answers() -> tuple[list, int]:
    payload = real.load("binance", "exchange_info")
    return [("GET", "/fapi/v1/exchangeInfo", None, payload)], payload["serverTime"] * 1_000_000


def bybit_answers() -> tuple[list, int]:
    listing = real.load("bybit", "instruments_info_linear")
    prelaunch = real.load("bybit", "instruments_info_prelaunch")
    return [("GET", BYBIT_LISTING, None, listing), ("GET", BYBIT_LISTING + "&status=PreLaunch", None, prelaunch)], \
        listing["time"] * 1_000_000


async def serve(directory: Path, venue: str, answers: list, ts_ns: int) -> Replay:
    return await start_replay(record(directory, venue, answers, ts_ns), venues=[venue])


async def load_events(url: str, venue: str, ts_ns: int) -> tuple[dict, list]:
    """(ccxt markets, our Instrument events) from the listing served at url.

    The collector stamps a definition with the time it received the listing (ccxt loads markets
    in a task of its own, so that time is not handed back through `received_ns`): here the
    recorded one."""
    adapter = ADAPTERS[venue]()
    client = adapter.client(url)
    try:
        markets = await client.load_markets()
    finally:
        await client.close()
    return markets, [adapter.instrument(m, ts_ns) for m in adapter.perpetuals(markets).values()]
