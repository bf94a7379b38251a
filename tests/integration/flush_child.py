"""A writer's flush in a process of its own, for tests/integration/test_flush_crash.py.

    python -m tests.integration.flush_child CATALOG INSTRUMENTS T_NS [STEP N [APPEND_MAX_BYTES]]

It stores one row of open interest and one of funding per instrument (`flush_events`) with
`CatalogStore.write`, as the writer's flush does. With STEP and N it stops after the N-th call
of that step of the batched commit (storage/durability.py) - `add` (a directory's new file
written), `sync`, `replace` (a rename), `unlink` (a superseded file deleted) - or of a tier
merge after it (storage/tiers.py) - `staged` (a merged file written in the stage), `linked`
(the directory's other files linked beside it), `exchange` (the stage swapped in) - says
`PAUSED STEP N` on stderr and waits there for the test's SIGKILL. APPEND_MAX_BYTES replaces
storage/files.py's bound (the test's tiers form from small files).
"""

import os
import sys
import threading

from messages.events import FundingRate, OpenInterest


def flush_events(instruments: int, t: int, first: int = 0) -> list:
    out = []
    for i in range(first, first + instruments):
        iid = f"C{i}USDT-PERP.BINANCE"
        out.append(OpenInterest(venue="binance", symbol=f"C{i}USDT", instrument_id=iid, ts_event=t, ts_recv=t,
                                open_interest=1000.0 + i, open_interest_value=1e8 + i))
        out.append(FundingRate(venue="binance", symbol=f"C{i}USDT", instrument_id=iid, ts_event=t, ts_recv=t,
                               rate=1e-4 * (i % 7), interval_minutes=480, next_funding_ns=t + 3600 * 10**9,
                               mark_price=100.0 + i))
    return out


def pause_after(owner, name: str, label: str, n: int) -> None:
    """Wrap `owner.name` so that its N-th call returns, then the process announces it and waits."""
    real, calls = getattr(owner, name), [0]

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == n:
            print(f"PAUSED {label} {n}", file=sys.stderr, flush=True)
            threading.Event().wait()
        return result

    setattr(owner, name, wrapped)


def main() -> None:
    from storage import compaction, durability
    from storage import files as cf
    from storage.store import CatalogStore

    catalog, instruments, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    if len(sys.argv) > 6:
        cf.APPEND_MAX_BYTES = int(sys.argv[6])
    if len(sys.argv) > 4:
        step, n = sys.argv[4], int(sys.argv[5])
        owner, name = {"add": (durability.Deferred, "add"), "sync": (durability, "sync_filesystem"),
                       "replace": (os, "replace"), "unlink": (durability, "unlink_if_exists"),
                       "staged": (compaction._Output, "close"), "linked": (compaction.Job, "_link_the_others"),
                       "exchange": (compaction, "exchange")}[step]
        pause_after(owner, name, step, n)
    written = CatalogStore(catalog, append_same_day=True).write(flush_events(instruments, t))
    print(f"DONE {sum(written.values())}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
