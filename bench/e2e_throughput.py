"""End-to-end throughput and acknowledgement latency of the storage path, vs a raw pyzmq pipe.

    .venv/bin/python bench/e2e_throughput.py [--events 200000] [--window 20000] [--paced-rate 1000]

Measured in one run, on the same machine, with the same encoded messages:

1. baseline: a raw pyzmq PUSH -> PULL pipe between two processes (no validation, no WAL, no ack).
2. pipeline: the real validator and writer processes (`python -m actors.validator|writer`); this
   process plays a collector (DEALER, identity `collector.bybit`, the project's `Outbox`), sends
   as fast as the outbox window allows, and counts an event only once the writer acknowledged it
   (WAL synced). Afterwards the catalog is counted: every event must be there (zero loss).
3. ack latency: the same pipeline paced at `--paced-rate` events/s: send -> cumulative ack that
   covers it, p50/p99 (includes the WAL group commit, `wal_sync_interval_s` = 50 ms).

Prints figures and ratios; not a test (machine noise makes timing assertions flaky).
"""

import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import click
import pyarrow.parquet as pq
import yaml
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from actors.outbox import Outbox  # noqa: E402
from actors.topology import BusConfig  # noqa: E402
from messages.codec import decode_message  # noqa: E402
from messages.envelope import Ack, ResendFrom  # noqa: E402
from messages.events import Liquidation  # noqa: E402

T0 = 1_790_000_000_000_000_000
SOURCE = "collector.bybit"  # the validator accepts only collector identities on its ingest socket


def events(n: int) -> list[Liquidation]:
    """Distinct liquidations 1 ms apart (distinct natural keys)."""
    return [
        Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT",
                    ts_event=T0 + i * 1_000_000, ts_recv=T0 + i * 1_000_000, side="LONG" if i % 2 else "SHORT",
                    quantity=0.001 * (1 + i % 97), price=90_000.0 + i % 1000, value=90.0 * (1 + i % 97))
        for i in range(n)
    ]


# -- 1. baseline ----------------------------------------------------------------------------------


def _pull(endpoint: str, n: int, ready, done) -> None:
    sock = zmq.Context().socket(zmq.PULL)
    sock.bind(endpoint)
    ready.set()
    for _ in range(n):
        sock.recv()
    done.value = time.perf_counter()


def raw_pipe(messages: list[bytes]) -> float:
    """Messages per second through PUSH -> PULL between two processes."""
    endpoint = f"ipc://@bench-raw-{uuid.uuid4().hex[:8]}"
    ready, done = mp.Event(), mp.Value("d", 0.0)
    proc = mp.Process(target=_pull, args=(endpoint, len(messages), ready, done))
    proc.start()
    ready.wait()
    sock = zmq.Context.instance().socket(zmq.PUSH)
    sock.connect(endpoint)
    time.sleep(0.2)
    started = time.perf_counter()
    for m in messages:
        sock.send(m)
    proc.join()
    sock.close(0)
    return len(messages) / (done.value - started)


# -- 2./3. the real validator + writer ------------------------------------------------------------


class Pipeline:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        topo = {"mesh": f"b{uuid.uuid4().hex[:8]}", "catalog": str(tmp / "catalog"), "run_dir": str(tmp / "run"),
                "venues": [{"venue": "bybit", "symbols": ["BTC/USDT:USDT"]}], "writer": {"flush_interval_s": 5}}
        self.topology = tmp / "topology.yaml"
        self.topology.write_text(yaml.safe_dump(topo))
        self.ingest = BusConfig().endpoint(topo["mesh"], "ingest")
        log = open(tmp / "actors.log", "wb")
        self.procs = [subprocess.Popen([sys.executable, "-m", f"actors.{a}", "--topology", str(self.topology)],
                                       cwd=ROOT, stdout=log, stderr=log) for a in ("writer", "validator")]
        time.sleep(2.0)
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, SOURCE.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.ingest)
        self.outbox = Outbox(SOURCE)

    def _drain_acks(self, block_ms: int) -> int:
        """Apply every ack waiting (blocking up to block_ms for the first); returns the acked seq."""
        while self.sock.poll(block_ms):
            match decode_message(self.sock.recv()):
                case Ack(epoch=epoch, seq=seq):
                    self.outbox.ack(epoch, seq)
                case ResendFrom(epoch=epoch, seq=seq):
                    for data in self.outbox.resend_from(epoch, seq):
                        self.sock.send(data)
            block_ms = 0
        for data in self.outbox.due():
            self.sock.send(data)
        return self.outbox.acked

    def blast(self, evs: list[Liquidation], window: int) -> float:
        """Events per second, counting an event when its ack (WAL synced) arrives."""
        started = time.perf_counter()
        for e in evs:
            while len(self.outbox) >= window:
                self._drain_acks(50)
            self.sock.send(self.outbox.add(e))
        while self.outbox.acked < self.outbox.seq:
            self._drain_acks(50)
        return len(evs) / (time.perf_counter() - started)

    def paced(self, evs: list[Liquidation], rate: float) -> list[float]:
        """Send at `rate`/s; the latency of each event from send to the ack that covers it (ms)."""
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        acked = self.outbox.acked
        start = time.perf_counter()
        for i, e in enumerate(evs):
            while (wait := start + i / rate - time.perf_counter()) > 0:
                acked = self._note(self._drain_acks(int(wait * 1000)), acked, sent_at, latencies)
            self.sock.send(self.outbox.add(e))
            sent_at[self.outbox.seq] = time.perf_counter()
        while self.outbox.acked < self.outbox.seq:
            acked = self._note(self._drain_acks(50), acked, sent_at, latencies)
        return latencies

    @staticmethod
    def _note(new: int, old: int, sent_at: dict[int, float], out: list[float]) -> int:
        now = time.perf_counter()
        for seq in range(old + 1, new + 1):
            if seq in sent_at:
                out.append((now - sent_at.pop(seq)) * 1000)
        return max(new, old)

    def stop(self) -> int:
        """SIGTERM (validator, then writer: they drain, the writer writes Parquet); rows stored."""
        for p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        files = (self.tmp / "catalog" / "data" / "custom_liquidation").rglob("*.parquet")
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


@click.command()
@click.option("--events", "n", default=200_000, show_default=True, help="Events for the throughput runs.")
@click.option("--window", default=20_000, show_default=True, help="Unacknowledged events the source may have in flight.")
@click.option("--paced-rate", default=1000.0, show_default=True, help="Events/s of the latency run.")
@click.option("--paced-seconds", default=10.0, show_default=True)
def main(n: int, window: int, paced_rate: float, paced_seconds: float) -> None:
    evs = events(n)
    outbox = Outbox(SOURCE)
    messages = [outbox.add(e) for e in evs]  # the very bytes the pipeline carries
    print(f"{n:,} liquidation events, {sum(map(len, messages)) / n:.0f} bytes each on the wire; {os.cpu_count()} CPUs")

    raw = raw_pipe(messages)
    print(f"baseline  raw pyzmq PUSH/PULL, 2 processes:            {raw:12,.0f} msgs/s")

    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(Path(tmp))
        try:
            rate = pipe.blast(evs, window)
            paced_evs = [e.__class__(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "ts_event": e.ts_event + 10**15})
                         for e in events(int(paced_rate * paced_seconds))]
            lat = pipe.paced(paced_evs, paced_rate)
        finally:
            stored = pipe.stop()
    expected = n + len(paced_evs)
    print(f"pipeline  collector -> validator -> writer (WAL synced, acked): {rate:8,.0f} events/s "
          f"= {rate / raw:.3f} x raw ({raw / rate:.1f}x slower)")
    print(f"catalog   {stored:,} rows stored of {expected:,} sent: {'zero loss' if stored == expected else 'LOSS'}")
    print(f"ack path  at {paced_rate:,.0f} events/s: send -> durable ack p50 {pct(lat, 50):.1f} ms, "
          f"p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms ({len(lat):,} events)")


if __name__ == "__main__":
    main()
