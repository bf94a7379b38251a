"""The whole mesh on all three full universes: CPU, memory and catalog files at `symbols: all`.

    .venv/bin/python bench/full_universe.py [--minutes 10] [--cascade-every 60] [--keep DIR]

Runs `bin/launch --sandbox` (the coordinator, its emulator with the full universes: ~540 Binance,
~560 Bybit, ~200 Hyperliquid perpetuals) with `symbols: all` on every venue at the defaults for
it (60 s open interest, funding and instrument refresh), liquidations on Binance
(`!forceOrder@arr`) and Bybit (`allLiquidation` of every symbol), and a market-wide cascade on
both every `--cascade-every` seconds (`POST /_emulator/cascade?symbol=all&count=20000&seconds=5`:
4,000 liquidations a second for 5 s; Binance pushes at most one per symbol per second of them).

Measured from the moment every collector has loaded its markets to the end (the start-up is
reported apart), from /proc:

- CPU of the whole mesh in cores: the sum of every actor's CPU time (user + system) over the
  wall time; the goal is under 1 of the machine's 2 cores. The emulator plays the venues: its
  CPU is shown, not counted;
- RSS per actor (last and peak);
- catalog files written per hour, and events stored per type (Parquet row counts);
- whether the writer keeps up: its flushes (events into Parquet, time spent flushing as a share
  of the wall time) against the events it acknowledged (in its WAL, the rest is written from
  there later) and what the collectors still held unacknowledged when stopped.

Prints figures; not a test (machine noise makes timing assertions flaky).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import click
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
VENUES = ("binance", "bybit", "hyperliquid")


def post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10).read()


def read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def actor_name(pid: int) -> str | None:
    """`collector.binance`, `writer`, `emulator`, ... from a process's command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    module = next((a for a in argv if a.startswith(("actors.", "emulator"))), None)
    if module is None:
        return None
    name = module.removeprefix("actors.")
    if name == "collector" and "--venue" in argv:
        name += "." + argv[argv.index("--venue") + 1]
    return name


def sample(root: int) -> dict[int, tuple[str, float, int]]:
    """pid -> (actor, CPU seconds, RSS bytes) of `root` and its children."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        ppid, cpu, rss = int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE
        if pid == root or ppid == root:
            name = "coordinator" if pid == root else actor_name(pid)
            if name:
                out[pid] = (name, cpu, rss)
    return out


def catalog_files(catalog: Path) -> list[Path]:
    return [p for p in catalog.rglob("*") if p.is_file()] if catalog.exists() else []


def rows_per_type(catalog: Path) -> Counter:
    """Parquet rows per data type directory (custom_open_interest, funding_rate_update, ...)."""
    out: Counter = Counter()
    for f in catalog.rglob("*.parquet"):
        rel = f.relative_to(catalog).parts
        kind = rel[1] if len(rel) > 2 and rel[0] == "data" else rel[0]
        try:
            out[kind] += pq.read_metadata(f).num_rows
        except Exception:  # noqa: BLE001 - a file being replaced: counted next time
            pass
    return out


def writer_flushes(log: str) -> tuple[int, int, float]:
    """(flushes, events, seconds spent flushing) from the writer's log."""
    found = [(int(n.replace(",", "")), int(ms)) for n, ms in re.findall(r"flushed ([\d,]+) events in (\d+) ms", log)]
    return len(found), sum(n for n, _ in found), sum(ms for _, ms in found) / 1000


def topology(tmp: Path) -> Path:
    topo = {
        "mesh": f"bench{uuid.uuid4().hex[:8]}",
        "catalog": str(tmp / "catalog"),
        "run_dir": str(tmp / "run"),
        "venues": [{"venue": v, "symbols": "all", "liquidations": v != "hyperliquid"} for v in VENUES],
        "writer": {"flush_interval_s": 10},  # as the shipped topology.yaml
    }
    path = tmp / "topology.yaml"
    path.write_text(yaml.safe_dump(topo))
    return path


@click.command()
@click.option("--minutes", default=10.0, show_default=True, help="Measured run time (2 for a quick look).")
@click.option("--cascade-every", default=60.0, show_default=True, help="Seconds between market-wide cascades (0: none).")
@click.option("--keep", type=click.Path(file_okay=False), default=None, help="Run in this directory and keep it.")
def main(minutes: float, cascade_every: float, keep: str | None) -> None:
    tmp = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="full-universe-"))
    tmp.mkdir(parents=True, exist_ok=True)
    topo = topology(tmp)
    log = open(tmp / "mesh.stderr", "wb")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "actors.coordinator", "--sandbox", str(topo)], cwd=ROOT, stdout=log, stderr=log)
    logs = tmp / "run" / "logs"
    try:
        ready = tmp / "run" / "emulator.json"
        urls = json.loads(wait_for(lambda: ready.exists() and read(ready), 60, "the emulator"))
        for v in VENUES:
            wait_for(lambda v=v: "markets loaded" in read(logs / f"collector.{v}.log"), 120, f"collector.{v}'s markets")
        counts = {v: read(logs / f"collector.{v}.log").split("collecting all ", 1)[1].split(" ", 1)[0] for v in VENUES}
        startup_s = time.monotonic() - started
        before, files_before = sample(proc.pid), len(catalog_files(tmp / "catalog"))
        t0, peak, last, cascades = time.monotonic(), Counter(), {}, 0
        next_cascade = t0 + min(30.0, cascade_every) if cascade_every else float("inf")
        while (now := time.monotonic()) < t0 + minutes * 60:
            if now >= next_cascade:
                for v in ("binance", "bybit"):
                    post(urls[v] + "/_emulator/cascade?symbol=all&count=20000&seconds=5")
                cascades += 1
                next_cascade += cascade_every
            last = sample(proc.pid)
            for pid, (name, _, rss) in last.items():
                peak[name] = max(peak[name], rss)
            time.sleep(1.0)
        wall = time.monotonic() - t0
        files_after = len(catalog_files(tmp / "catalog"))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    cpu: Counter = Counter()
    for pid, (name, seconds, _) in last.items():
        cpu[name] += seconds - (before[pid][1] if pid in before else 0.0)
    mesh = sum(s for n, s in cpu.items() if n != "emulator")
    rows = rows_per_type(tmp / "catalog")
    print(f"perpetuals collected: {', '.join(f'{v} {counts[v]}' for v in VENUES)}")
    print(f"start-up (launch to every collector's markets loaded): {startup_s:.1f} s")
    print(f"measured: {wall / 60:.1f} min, {cascades} cascades (binance + bybit, 20,000 in 5 s each)")
    print(f"\nCPU of the whole mesh: {mesh / wall:.2f} cores (goal: under 1 of {os.cpu_count()})")
    print(f"{'actor':<24} {'cores':>6} {'RSS MB':>8} {'peak MB':>8}")
    for name in sorted(cpu, key=lambda n: (n == "emulator", n)):
        rss = sum(r for _, (n, _, r) in last.items() if n == name)
        label = name + ("  (the venues; not counted)" if name == "emulator" else "")
        print(f"{label:<24} {cpu[name] / wall:>6.2f} {rss / 2**20:>8.0f} {peak[name] / 2**20:>8.0f}")
    written = files_after - files_before
    rewritten = sum(int(n) for n in re.findall(r"new rows in (\d+) of \d+ directories", read(logs / "writer.log")))
    run_s = time.monotonic() - started
    print(f"\ncatalog files: {files_after} ({written} new while measured: {written * 3600 / wall:,.0f} per hour); "
          f"files written or rewritten (a directory per flush): {rewritten:,} in the run, {rewritten * 3600 / run_s:,.0f} per hour")
    print("events stored per type (rows, whole run):")
    for kind, n in sorted(rows.items()):
        print(f"  {kind:<32} {n:>10,}")
    flushes, flushed, flushing_s = writer_flushes(read(logs / "writer.log"))
    acked = sum(int(n) for v in VENUES for n in re.findall(r"all (\d+) events acknowledged", read(logs / f"collector.{v}.log")))
    held = sum(int(n) for v in VENUES for n in re.findall(r"stopping with (\d+) unacknowledged", read(logs / f"collector.{v}.log")))
    print(f"writer: {flushes} flushes, {flushed:,} events into Parquet, {flushing_s:.0f} s flushing "
          f"({flushing_s / (time.monotonic() - started):.0%} of the run); {acked:,} events acknowledged (in its WAL), "
          f"{held:,} not acknowledged at stop")
    dead = read(tmp / "run" / "deadletter.jsonl").count("\n")
    limited = sum(read(logs / f"collector.{v}.log").count("rate limit answer") for v in VENUES)
    print(f"dead letters: {dead}; rate-limit answers seen by the collectors: {limited}")
    print(f"run directory: {tmp}" + ("" if keep else " (temporary)"))


if __name__ == "__main__":
    main()
