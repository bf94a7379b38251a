"""Security: typed msgspec decoding only (a pickle is refused, never run), unknown peers and
unknown message types refused and logged by the real validator process over real ZeroMQ,
private modes of the run directory, logs and recordings, tcp endpoints on loopback unless
opted in, and API keys absent from errors, logs and recordings."""

import asyncio
import os
import pickle
import stat
import subprocess
import sys
import time
from pathlib import Path

import ccxt
import msgspec
import pytest
import yaml
import zmq

from venues.recording import load
from actors.runtime import make_bus_dir
from actors.topology import TopologyError, load_topology
from venues import adapter
from messages.codec import decode_event, decode_message, encode
from messages.envelope import Envelope
from messages.events import OpenInterest
from tests.harness import ROOT, start_emulator, write_topology

NOW = time.time_ns()


class Exploit:
    def __reduce__(self):  # unpickling this would create the file
        return (open, (str(Path(os.environ.get("TMPDIR", "/tmp")) / "derivs-pickle-ran"), "w"))


def test_a_pickle_is_refused_by_the_typed_decoders_and_never_run(tmp_path):
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / "derivs-pickle-ran"
    marker.unlink(missing_ok=True)
    for decode in (decode_message, decode_event):
        with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
            decode(pickle.dumps(Exploit()))
    assert not marker.exists()
    sources = [p for d in ("actors", "messages", "cli") for p in (ROOT / d).rglob("*.py")]
    assert not [p for p in sources if "import pickle" in p.read_text() or "pickle.loads" in p.read_text()]


def test_validator_refuses_unknown_peers_and_unknown_message_types(tmp_path):
    """The real validator process; we play the writer (ROUTER on `store`) and two senders."""
    topology = write_topology(tmp_path)
    topo, _ = load_topology(topology)
    make_bus_dir(topo.mesh)
    ctx = zmq.Context()
    store = ctx.socket(zmq.ROUTER)
    store.bind(topo.endpoint("store"))
    proc = subprocess.Popen([sys.executable, "-m", "actors.validator", "--topology", str(topology)], cwd=ROOT,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        event = OpenInterest(venue="BINANCE", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-PERP.BINANCE", ts_event=NOW,
                             ts_recv=NOW, open_interest=1.0, open_interest_value=2.0)
        senders = {}
        for name in ("intruder", "collector.binance"):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.IDENTITY, name.encode())
            sock.connect(topo.endpoint("ingest"))
            senders[name] = sock
        time.sleep(1.0)  # the validator binds ingest
        envelope = lambda source: encode(Envelope(source=source, epoch=1, seq=1, payload=msgspec.Raw(encode(event))))  # noqa: E731
        senders["intruder"].send(envelope("intruder"))
        senders["collector.binance"].send(pickle.dumps(Exploit()))  # unknown type from a known peer
        senders["collector.binance"].send(envelope("collector.bybit"))  # a known peer posing as another
        senders["collector.binance"].send(envelope("collector.binance"))  # the one good message
        assert store.poll(5000), "the good event never reached the writer"
        forwarded = [store.recv_multipart()]
        while store.poll(1000):
            forwarded.append(store.recv_multipart())
        assert len(forwarded) == 1 and decode_message(forwarded[0][1]).source == "collector.binance"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        for sock in [store, *senders.values()]:
            sock.close(linger=0)
        ctx.term()
    log = err.decode()
    assert "message from unknown peer b'intruder' refused" in log
    assert "undecodable message from b'collector.binance' dropped" in log
    assert "claiming source 'collector.bybit' refused" in log
    run_dir = Path(topo.run_dir)
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "logs" / "validator.log").stat().st_mode) == 0o600


@pytest.mark.parametrize("endpoint,ok", [("tcp://127.0.0.1:5555", True), ("tcp://localhost:5555", True),
                                         ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False), ("tcp://10.1.2.3:5555", False)])
def test_tcp_endpoints_stay_on_loopback_unless_opted_in(tmp_path, endpoint, ok):
    path = write_topology(tmp_path, bus={"ingest": endpoint})
    if ok:
        load_topology(path)
        return
    with pytest.raises(TopologyError, match=r"bus\.ingest: .*allow_remote"):
        load_topology(path)
    raw = yaml.safe_load(path.read_text())
    raw["bus"]["allow_remote"] = True
    path.write_text(yaml.safe_dump(raw))
    assert load_topology(path)[0].bus.allow_remote


def test_api_keys_stay_out_of_errors_logs_and_recordings(tmp_path, monkeypatch, capfd):
    key, secret = "KEY-" + "k" * 40, "SECRET-" + "s" * 40
    monkeypatch.setenv("BINANCE_API_KEY", key)
    monkeypatch.setenv("BINANCE_API_SECRET", secret)
    proc, urls, _ = start_emulator(tmp_path)
    recordings = tmp_path / "run" / "recordings"
    try:
        async def session() -> str:
            client = adapter("binance").client(urls["binance"], record_dir=str(recordings))
            try:
                await client.load_markets()
                await client.fetch_open_interest("BTC/USDT:USDT")
                with pytest.raises(ccxt.BaseError) as signed:  # a signed call: key header + signature
                    await client.fapiPrivateV2GetAccount()
                return str(signed.value)
            finally:
                await client.close()

        error = asyncio.run(session())
    finally:
        proc.terminate()
        proc.wait(10)
    assert key not in error and secret not in error
    text = (recordings / "binance.jsonl").read_text()
    assert key not in text and secret not in text
    signed = [r for r in load(recordings / "binance.jsonl") if "/account" in r["url"]]
    assert signed and "signature=<redacted>" in signed[0]["url"] and "timestamp=" in signed[0]["url"]
    assert stat.S_IMODE(recordings.stat().st_mode) == 0o700
    assert stat.S_IMODE((recordings / "binance.jsonl").stat().st_mode) == 0o600
    out, err = capfd.readouterr()
    assert key not in out + err and secret not in out + err
