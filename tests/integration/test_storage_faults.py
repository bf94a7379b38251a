"""The catalog itself goes bad under a running mesh (liquidation load on Bybit): garbage written into
the day's Parquet file the writer appends to, and a file put where an instrument's directory
belongs. The corrupt file is moved aside with a clear log line, the rows the writer cannot store
are set aside in a quarantine file (and stored from there once the cause is gone), everything
else is stored, and ParquetDataCatalog loads the catalog. Ground truth: the emulator's record."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from storage.files import list_files
from actors.quarantine import read
from actors.wal import Wal
from actors.writer import _wal_decoder
from messages.codec import decode_event
from messages.envelope import Envelope
from tests.harness import ROOT, mesh_log, wait_for
from tests.integration.faults import LoadedMesh, compare, key_of_truth, read_liquidations, settle_and_stop

GARBAGE = b"not parquet " * 1000
HL_OI = "BTC-USD-PERP.HYPERLIQUID"


def _corrupt_the_days_file(directory: Path, writer_log: Path) -> int:
    """Overwrite the newest file with garbage until the writer meets it (a flush in progress may
    replace the file we wrote, with its rows intact); returns when it was last overwritten (ns)."""
    for _ in range(5):
        corrupted_ns = time.time_ns()
        Path(list_files(directory)[-1].path).write_bytes(GARBAGE)
        try:
            wait_for(lambda: "unreadable Parquet file" in writer_log.read_text(), 5, 0.1)
            return corrupted_ns
        except AssertionError:
            continue
    raise AssertionError("the writer never said it met the corrupt file")


def _stored_ts(catalog: Path, instrument_id: str) -> set[int]:
    """ts_event of every row stored for the instrument, whatever its data type."""
    return {ts for f in catalog.glob(f"data/*/{instrument_id}/*.parquet")
            for ts in pq.read_table(f, columns=["ts_event"]).column(0).to_pylist()}


def test_a_corrupt_file_is_moved_aside_rows_that_cannot_be_stored_are_quarantined_and_the_rest_is_stored(tmp_path):
    mesh = LoadedMesh(tmp_path)
    writer_log = mesh.run_dir / "logs" / "writer.log"
    eth = mesh.catalog / "data" / "custom_liquidation" / "ETHUSDT-LINEAR.BYBIT"
    hl_oi = mesh.catalog / "data" / "custom_open_interest" / HL_OI
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", 200)
        wait_for(lambda: list_files(eth) and list_files(hl_oi), 30, 0.2, "the day's ETH liquidation and Hyperliquid OI files")
        # An instrument's directory the writer cannot write: a file in its place (an operator's slip).
        hl_oi.rename(tmp_path / "hl-oi-before")
        hl_oi.write_text("in the way")
        corrupted_ns = _corrupt_the_days_file(eth, writer_log)
        wait_for(lambda: "set aside in" in writer_log.read_text(), 30, 0.2, "the Hyperliquid OI rows to be set aside")
        time.sleep(3.0)  # the load goes on
        signal_ns, _ = settle_and_stop(mesh, signal.SIGINT)
    finally:
        mesh.kill()
    log = writer_log.read_text()
    assert mesh.proc.returncode == 0 and "Traceback" not in mesh_log(mesh.topology)
    # What waits in the WAL at the stop: rows of the instrument that still cannot be stored (polled after
    # the last set-aside, not failed three times yet), and the rows that shared the last flush with
    # them, which are in Parquet already (a replay stores nothing twice). Nothing else may be held.
    left = [decode_event(m.payload) for m in map(_wal_decoder.decode, Wal(mesh.run_dir / "writer" / "wal.log").replay())
            if isinstance(m, Envelope)]
    held = [e for e in left if e.instrument_id != HL_OI and e.ts_event not in _stored_ts(mesh.catalog, e.instrument_id)]
    assert held == [], f"rows of a storable instrument held in the WAL and not in Parquet: {held[:3]}"

    # the corrupt file: moved aside, named in the log with pyarrow's reason
    [aside] = (mesh.catalog / "quarantine" / "custom_liquidation" / "ETHUSDT-LINEAR.BYBIT").iterdir()
    assert aside.read_bytes() == GARBAGE
    assert f"unreadable Parquet file {eth}/" in log and "ArrowInvalid" in log and f"moved to {aside.parent}" in log

    # the rows that could not be stored: retried, then set aside with the OS error and the path
    assert "(attempt 1 of 3)" in log and "EEXIST: [Errno 17] File exists" in log and f"custom_open_interest/{HL_OI}" in log
    quarantined = [q for f in sorted((mesh.run_dir / "quarantine").glob("*-custom_open_interest-*.jsonl")) for q in read(f)]
    assert len(quarantined) >= 3 and {q.event.instrument_id for q in quarantined} == {HL_OI}
    assert all("File exists" in q.reason for q in quarantined)

    # the cause gone, they are stored from the quarantine files
    hl_oi.unlink()
    done = subprocess.run([sys.executable, "-m", "actors.quarantine", "--catalog", str(mesh.catalog),
                           *map(str, (mesh.run_dir / "quarantine").glob("*.jsonl"))], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

    # everything else is stored; ParquetDataCatalog loads the catalog
    stored, truth = read_liquidations(mesh.catalog), mesh.truth()
    assert {ts for _, ts in stored["open_interest"]} >= {q.event.ts_event for q in quarantined}
    btc = compare(truth, stored, "BYBIT", signal_ns, symbols=("BTCUSDT",))
    assert btc["expected"] > 1_000 and btc["missing"] == [] and btc["missing_in_gaps"] == [] and btc["duplicates"] == []
    ethereum = compare(truth, stored, "BYBIT", signal_ns, symbols=("ETHUSDT",))
    sent = {key_of_truth(r): r["sent_ns"] for r in truth}
    assert ethereum["missing"], "the corrupt file held no rows: the test did not test"
    lost_later = [k for k in ethereum["missing"] if sent[k] >= corrupted_ns]
    assert lost_later == [], f"{len(lost_later)} ETH liquidations pushed after the corruption are missing"
    assert ethereum["duplicates"] == [] and compare(truth, stored, "BINANCE", signal_ns)["missing"] == []
