"""End-to-end throughput and acknowledgement latency of the storage path, vs a raw pyzmq pipe.

    .venv/bin/python bench/e2e_throughput.py [--events 200000] [--window 20000] [--paced-rate 1000]

Measured in one run, on the same machine, with the same encoded messages:

1. baseline: a raw pyzmq PUSH -> PULL pipe between two processes (no validation, no WAL, no ack).
2. pipeline: the real validator and writer processes (`python -m actors.validator|writer`); this
   process plays a collector (DEALER, identity `collector.bybit`, the project's `Outbox`), sends
   as fast as the outbox window allows, and counts an event only once the writer acknowledged it
   (WAL synced). Afterwards the catalog is counted: every event must be there (zero loss).
   The source sends like a collector: whatever waits in its outbox, in batches (actors/outbox.py
   `next_batch`).
3. ack latency: the same pipeline paced at `--paced-rate` events/s: send -> cumulative ack that
   covers it, p50/p99 (includes the WAL group commit, `wal_sync_interval_s` = 50 ms); and send ->
   a live tap (a SUB on the validator's bus) receiving it, p50/p99.
4. backlog drain: `--backlog` events spooled by a collector while nothing acknowledged, then
   re-sent from its spool by its next life (`Outbox.resume`): events/s until all are acknowledged.

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

import msgspec  # noqa: E402

from actors.outbox import Outbox  # noqa: E402
from actors.spool import OutboxLog  # noqa: E402
from actors.topology import BusConfig  # noqa: E402
from messages.codec import decode_event, decode_message  # noqa: E402
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
    def __init__(self, tmp: Path, profile: Path | None = None):
        self.tmp = tmp
        topo = {"mesh": f"b{uuid.uuid4().hex[:8]}", "catalog": str(tmp / "catalog"), "run_dir": str(tmp / "run"),
                "venues": [{"venue": "bybit", "symbols": ["BTC/USDT:USDT"]}], "writer": {"flush_interval_s": 5}}
        self.topology = tmp / "topology.yaml"
        self.topology.write_text(yaml.safe_dump(topo))
        bus = BusConfig()
        log = open(tmp / "actors.log", "wb")
        profiled = lambda a: ["-m", "cProfile", "-o", str(profile / f"{a}.prof")] if profile else []  # noqa: E731
        self.procs = [subprocess.Popen([sys.executable, *profiled(a), "-m", f"actors.{a}", "--topology", str(self.topology)],
                                       cwd=ROOT, stdout=log, stderr=log) for a in ("writer", "validator")]
        time.sleep(2.0)
        ctx = zmq.Context.instance()
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.IDENTITY, SOURCE.encode())
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(bus.endpoint(topo["mesh"], "ingest"))
        self.taps = ctx.socket(zmq.SUB)  # a live tap, as bin/tap subscribes
        self.taps.setsockopt(zmq.LINGER, 0)
        self.taps.connect(bus.endpoint(topo["mesh"], "taps"))
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)
        self.poller.register(self.taps, zmq.POLLIN)
        self.tapped: dict[int, float] = {}  # ts_event -> when the tap received it
        self.outbox = Outbox(SOURCE, sender_driven=True)  # as a collector's: its sender sends what waits, batched

    def _send_waiting(self) -> None:
        """What the collector's sender does: everything waiting, in batches, at once."""
        self.outbox.refill()
        while batch := self.outbox.next_batch():
            self.sock.send(batch[1])
            self.outbox.mark_sent(batch[0])
            self.outbox.refill()

    def _drain_acks(self, block_ms: int) -> int:
        """Apply every ack waiting (blocking up to block_ms for the first), note tapped events,
        send what waits (re-sends too); returns the acked seq."""
        while ready := dict(self.poller.poll(block_ms)):
            if self.taps in ready:
                while self.taps.poll(0):
                    _, payload = self.taps.recv_multipart()
                    self.tapped.setdefault(decode_event(payload).ts_event, time.perf_counter())
            while self.sock.poll(0):
                match decode_message(self.sock.recv()):
                    case Ack(epoch=epoch, seq=seq):
                        self.outbox.ack(epoch, seq)
                    case ResendFrom(epoch=epoch, seq=seq):
                        self.outbox.resend_from(epoch, seq)  # rewinds the sender
            block_ms = 0
        self.outbox.due()
        self._send_waiting()
        return self.outbox.acked

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each process (Linux /proc), this one as the collector."""
        tick = os.sysconf("SC_CLK_TCK")
        used = {"collector": time.process_time()}
        for name, p in zip(("writer", "validator"), self.procs):
            fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        return used

    def blast(self, evs: list[Liquidation], window: int) -> float:
        """Events per second, counting an event when its ack (WAL synced) arrives."""
        started = time.perf_counter()
        i = 0
        while i < len(evs) or not self.outbox.finished:
            room = max(0, window - len(self.outbox))
            for e in evs[i:i + room]:
                self.outbox.add(e)
            i += room
            self._drain_acks(0 if room and i < len(evs) else 50)
        return len(evs) / (time.perf_counter() - started)

    def paced(self, evs: list[Liquidation], rate: float) -> tuple[list[float], list[float]]:
        """Send at `rate`/s; per event, ms from send to the ack that covers it and to the tap."""
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        sent_ts: dict[int, float] = {}  # ts_event -> sent at
        self.outbox.add(evs[0])  # warm-up: the actors are up and answering (not counted)
        while not self.outbox.finished:
            self._drain_acks(50)
        evs = evs[1:]
        acked = self.outbox.acked
        self.taps.subscribe(b"liq.BYBIT.")  # only now: the tap's cost is the validator's, not this process's
        time.sleep(0.2)
        start = time.perf_counter()
        for i, e in enumerate(evs):
            while (wait := start + i / rate - time.perf_counter()) > 0:
                acked = self._note(self._drain_acks(max(1, round(wait * 1000))), acked, sent_at, latencies)  # no spinning
            self.outbox.add(e)
            self._send_waiting()
            sent_at[self.outbox.seq] = sent_ts[e.ts_event] = time.perf_counter()
        while not self.outbox.finished:
            acked = self._note(self._drain_acks(50), acked, sent_at, latencies)
        self._drain_acks(200)  # the last taps
        self.taps.unsubscribe(b"liq.BYBIT.")
        tap = [(self.tapped[ts] - t) * 1000 for ts, t in sent_ts.items() if ts in self.tapped]
        return latencies, tap

    def backlog(self, evs: list[Liquidation], memory_max: int) -> float:
        """An outage's backlog: a collector spooled `evs` with no writer acknowledging and
        stopped; its next life re-sends them from the spool. Events/s until all are acknowledged."""
        spool = self.tmp / "spool"
        limits = {"memory_max": memory_max, "spool_max_bytes": 1 << 30}
        down = Outbox(SOURCE, spool_dir=spool, sender_driven=True, **limits)
        for e in evs:
            down.add(e)
        down.close()
        [found] = OutboxLog.recover(spool, SOURCE)
        started = time.perf_counter()
        self.outbox = Outbox.resume(SOURCE, found, **limits)
        while not self.outbox.finished:
            self._drain_acks(50)
        rate = len(evs) / (time.perf_counter() - started)
        self.outbox.close()
        return rate

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


def shifted(evs: list[Liquidation], ns: int) -> list[Liquidation]:
    """The same events `ns` later (other natural keys: stored as new rows)."""
    return [msgspec.structs.replace(e, ts_event=e.ts_event + ns, ts_recv=e.ts_recv + ns) for e in evs]


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


@click.command()
@click.option("--events", "n", default=200_000, show_default=True, help="Events for the throughput runs.")
@click.option("--window", default=20_000, show_default=True, help="Unacknowledged events the source may have in flight.")
@click.option("--paced-rate", default=1000.0, show_default=True, help="Events/s of the latency run.")
@click.option("--paced-seconds", default=10.0, show_default=True)
@click.option("--backlog", "backlog_n", default=200_000, show_default=True, help="Events spooled during an outage, then drained.")
@click.option("--profile", type=click.Path(file_okay=False, path_type=Path), help="Write cProfile stats of the actors here.")
def main(n: int, window: int, paced_rate: float, paced_seconds: float, backlog_n: int, profile: Path | None) -> None:
    evs = events(n)
    outbox = Outbox(SOURCE)
    messages = [outbox.add(e) for e in evs]  # one event per message, as a collector of earlier versions sent them
    print(f"{n:,} liquidation events, {sum(map(len, messages)) / n:.0f} bytes each on the wire; {os.cpu_count()} CPUs")

    raw = raw_pipe(messages)
    print(f"baseline  raw pyzmq PUSH/PULL, 2 processes:            {raw:12,.0f} msgs/s")

    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(Path(tmp), profile)
        try:
            paced_evs = shifted(events(int(paced_rate * paced_seconds)), 10**15)
            lat, tap = pipe.paced(paced_evs, paced_rate)  # first: the steady state, not a blast's aftermath
            before = pipe.cpu_s()
            rate = pipe.blast(evs, window)
            cpu = {k: (v - before[k]) / n * 1e6 for k, v in pipe.cpu_s().items()}
            drain = pipe.backlog(shifted(events(backlog_n), 2 * 10**15), window) if backlog_n else 0.0
        finally:
            stored = pipe.stop()
    expected = n + len(paced_evs) + backlog_n
    print(f"pipeline  collector -> validator -> writer (WAL synced, acked): {rate:8,.0f} events/s "
          f"= {rate / raw:.3f} x raw ({raw / rate:.1f}x slower)")
    print("cpu       per event while blasting: " + ", ".join(f"{k} {v:.1f} us" for k, v in cpu.items())
          + " (the writer's Parquet flushes partly later)")
    print(f"catalog   {stored:,} rows stored of {expected:,} sent: {'zero loss' if stored == expected else 'LOSS'}")
    print(f"ack path  at {paced_rate:,.0f} events/s: send -> durable ack p50 {pct(lat, 50):.1f} ms, "
          f"p99 {pct(lat, 99):.1f} ms, max {max(lat):.1f} ms ({len(lat):,} events)")
    print(f"tap       at {paced_rate:,.0f} events/s: send -> live tap p50 {pct(tap, 50):.2f} ms, p99 {pct(tap, 99):.2f} ms, "
          f"max {max(tap):.1f} ms ({len(tap):,} of {len(paced_evs):,} events tapped)")
    if backlog_n:
        print(f"backlog   {backlog_n:,} events spooled during an outage, drained at {drain:,.0f} events/s "
              f"({backlog_n / drain:.1f} s, resent from the spool by the next collector life)")


if __name__ == "__main__":
    main()
