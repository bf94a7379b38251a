"""Soak (opt-in: `bin/test -m soak`): the sandbox mesh at a high event rate for SOAK_MINUTES
(default 30), the RSS of every actor sampled every 10 s; prints the slope per actor and writes
the samples to `soak_rss.csv` in the test's temp dir.

The memory must stay flat (user story 6, SC-006): after a warm-up of a fifth of the run, no
actor may grow faster than SOAK_MAX_MB_PER_HOUR (default 20 MB/h), and nothing may be lost.
"""

import os
import signal
import statistics
import time

import pytest

from tests.integration.faults import (
    LoadedMesh,
    compare_arrow,
    count_liquidations_arrow,
    nautilus_count,
    settle_and_stop,
)

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
MAX_MB_PER_HOUR = float(os.environ.get("SOAK_MAX_MB_PER_HOUR", "20"))
RATE_PER_SYMBOL = float(os.environ.get("SOAK_RATE_PER_SYMBOL", "1000"))  # Bybit, two symbols
SAMPLE_S = 10.0


def rss_mb(pid: int) -> float | None:
    """None if the process is gone (or a zombie, which has no VmRSS) since the status was read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:")), None)
    except FileNotFoundError:
        return None


def slope_mb_per_hour(samples: list[tuple[float, float, int]]) -> float:
    ts, mb, _ = zip(*samples, strict=True)
    return statistics.linear_regression(ts, mb).slope * 3600


@pytest.mark.soak
@pytest.mark.timeout(int(MINUTES * 60) + 600)  # the suite's 300 s per-test limit is for the default tests
def test_memory_stays_flat_at_a_high_event_rate(tmp_path):
    mesh = LoadedMesh(tmp_path)
    samples: dict[str, list[tuple[float, float, int]]] = {}  # (s, RSS MB, queue depth)
    try:
        mesh.start()
        mesh.liquidation_rate("bybit", RATE_PER_SYMBOL)
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < MINUTES * 60:
            for a in mesh.status():
                if a["pid"] and (mb := rss_mb(a["pid"])) is not None:
                    samples.setdefault(a["name"], []).append((elapsed, mb, a.get("queue_depth", 0)))
            time.sleep(SAMPLE_S)
        status = {a["name"]: a for a in mesh.status()}
        report(tmp_path, samples, status)  # before stopping: the figures survive a failed stop
        signal_ns, _ = settle_and_stop(mesh, signal.SIGINT)
    finally:
        mesh.kill()
    # Millions of rows: compared in pyarrow (Python dicts of the truth outgrew 24 GB).
    bybit = compare_arrow(mesh.truth_path, mesh.catalog, "BYBIT", signal_ns)
    print(f"soak {bybit['expected']:,} Bybit liquidations over {MINUTES:g} min: {len(bybit['missing'])} missing "
          f"{bybit['missing'][:3]}, {bybit['duplicates']} duplicates, {bybit['extra']} never pushed")
    # ParquetDataCatalog still reads the grown catalog: the last minute of one instrument agrees.
    iid, last_ms = "BTCUSDT-LINEAR.BYBIT", signal_ns // 1_000_000 * 1_000_000
    window = count_liquidations_arrow(mesh.catalog, iid, last_ms - 60 * 10**9, last_ms + 999_999)
    assert window and nautilus_count(mesh.catalog, iid, last_ms - 60 * 10**9, last_ms + 999_999) == window
    slopes = {name: slope_mb_per_hour([s for s in rows if s[0] >= MINUTES * 60 / 5]) for name, rows in samples.items()}

    assert bybit["missing"] == [] and bybit["duplicates"] == 0 and bybit["extra"] == 0
    assert all(a["restarts"] == 0 for a in status.values()), status
    assert all(s < MAX_MB_PER_HOUR for s in slopes.values()), slopes


def report(tmp_path, samples: dict[str, list[tuple[float, float, int]]], status: dict[str, dict]) -> None:
    with open(tmp_path / "soak_rss.csv", "w") as f:
        f.write("actor,seconds,rss_mb,queue_depth\n")
        f.writelines(f"{name},{t:.0f},{mb:.1f},{q}\n" for name, rows in samples.items() for t, mb, q in rows)
    warm = MINUTES * 60 / 5
    for name, rows in samples.items():
        a, after = status.get(name, {}), [s for s in rows if s[0] >= warm]
        # Medians of the first and last fifth after warm-up: a trend that one peak cannot make.
        fifth = max(1, len(after) // 5)
        first, last = (statistics.median(mb for _, mb, _ in part) for part in (after[:fifth], after[-fifth:]))
        print(f"soak {name:<22} rss {rows[0][1]:7.1f} -> {rows[-1][1]:7.1f} MB (max {max(mb for _, mb, _ in after):.1f}), "
              f"slope after warm-up {slope_mb_per_hour(after):+7.2f} MB/h, median {first:.1f} -> {last:.1f} MB, "
              f"restarts {a.get('restarts')}, events in {a.get('events_in', 0):,}, queue {a.get('queue_depth', 0):,}",
              flush=True)
