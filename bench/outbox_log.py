"""What the outbox's on-disk log costs a collector: numbering events with every one written to
the log (the collector now, so a backlog survives a restart or kill -9) against the memory-only
outbox (the collector until issue 13), in the same run.

    .venv/bin/python bench/outbox_log.py [--events 200000] [--window 2000]

The loop is the collector's: add an event, hand it to the "socket" (mark it sent), and every
`window` events acknowledge them all (the writer's group commit), which deletes acknowledged
segments and writes an ack marker now and then. Printed: events/s and µs per event of both, the
ratio, and how long `OutboxLog.recover` takes to read back a backlog of all the events (what a
restarted collector pays once).
"""

import argparse
import tempfile
import time

from actors.outbox import Outbox
from actors.spool import OutboxLog
from messages.events import Liquidation

T0 = 1_790_000_000_000_000_000


def liquidation(i: int) -> Liquidation:
    return Liquidation(venue="BYBIT", symbol="BTC/USDT:USDT", instrument_id="BTCUSDT-LINEAR.BYBIT", ts_event=T0 + i,
                       ts_recv=T0 + i, side="LONG", quantity=0.01 * (i % 100 + 1), price=90_000.0 + i % 1000,
                       value=900.0)


def run(box: Outbox, events: list, window: int) -> float:
    started = time.perf_counter()
    for i, event in enumerate(events, 1):
        box.add(event)
        for seq, _ in box.unsent(1):
            box.mark_sent(seq)
        if i % window == 0:
            box.ack(box.epoch, box.seq)
    box.ack(box.epoch, box.seq)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=2000, help="events per acknowledgement")
    args = parser.parse_args()
    events = [liquidation(i) for i in range(args.events)]
    limits = {"memory_max": 200_000, "spool_max_bytes": 1 << 30, "sender_driven": True}
    memory_s = run(Outbox("collector.bench", **limits), events, args.window)
    with tempfile.TemporaryDirectory() as tmp:
        logged_s = run(Outbox("collector.bench", spool_dir=tmp, **limits), events, args.window)
        backlog = Outbox("collector.bench", spool_dir=tmp, **limits)
        for event in events:
            backlog.add(event)
        backlog.log._close_fd()  # as a kill -9 leaves it
        started = time.perf_counter()
        [found] = [r for r in OutboxLog.recover(tmp, "collector.bench") if r.pending]
        recover_s = time.perf_counter() - started
    n = args.events
    print(f"memory only : {n / memory_s:>10,.0f} events/s  {memory_s / n * 1e6:6.2f} µs/event")
    print(f"with the log: {n / logged_s:>10,.0f} events/s  {logged_s / n * 1e6:6.2f} µs/event  "
          f"({memory_s / logged_s:.2f}x of memory only)")
    print(f"recover a backlog of {found.pending:,} events ({found.pending_bytes / 1e6:.1f} MB): {recover_s:.2f} s")


if __name__ == "__main__":
    main()
