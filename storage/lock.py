"""`<catalog>/.writer.lock`: who may write a catalog right now.

The catalog has one writer at a time. The mesh's writer takes an exclusive `flock` on this file
when it starts and keeps it for its whole life, recording in the file who it is (pid, mesh name,
its ingest endpoint). `derivs history` takes the same lock only for the moment it writes rows
itself. So:

- a CLI can tell whether a mesh is running on the catalog (the lock is held and the file names a
  writer whose pid is alive) and then hands its rows to that mesh instead of writing;
- a writer never starts writing (not even crash recovery) while a CLI is in the middle of a write;
- a second mesh on the same catalog is refused even under another mesh name.

`flock` locks belong to the open file: the kernel drops them when the process dies, so a
crashed writer never leaves a stale lock behind (the file and its stale contents stay; only a
held lock counts). The file does not end in `.parquet`, so ParquetDataCatalog ignores it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

LOCK_NAME = ".writer.lock"


class CatalogBusy(RuntimeError):
    """Another process holds the catalog's writer lock."""

    def __init__(self, path: Path, holder: dict) -> None:
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {describe(holder)}")


def lock_path(catalog: str | os.PathLike, name: str = LOCK_NAME) -> Path:
    return Path(catalog) / name


class CatalogLock:
    """An exclusive lock file in a directory (by default the catalog's writer lock); `info` is
    written into the file once held. The coordinator uses one too (`coordinator.lock`)."""

    def __init__(self, catalog: str | os.PathLike, info: dict, name: str = LOCK_NAME) -> None:
        self.path = lock_path(catalog, name)
        self.info = info
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        data = json.dumps({**self.info, "pid": os.getpid(), "since_ns": time.time_ns()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        self.fd = fd
        return True

    def acquire(self, timeout_s: float, poll_s: float = 0.05) -> None:
        """Wait up to `timeout_s` for the lock; CatalogBusy (naming the holder) if it stays taken."""
        deadline = time.monotonic() + timeout_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise CatalogBusy(self.path, holder(self.path.parent, self.path.name) or {})
            time.sleep(poll_s)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # no stale "who": the next reader sees an empty, unlocked file
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> CatalogLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(catalog: str | os.PathLike, name: str = LOCK_NAME) -> dict | None:
    """What the current holder recorded ({} if nothing yet), or None if nobody holds the lock."""
    path = lock_path(catalog, name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            data = os.pread(fd, 65536, 0)
            try:
                info = json.loads(data) if data.strip() else {}
            except ValueError:
                info = {}
            return info if isinstance(info, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def running_writer(catalog: str | os.PathLike) -> dict | None:
    """The lock info of a mesh writer holding this catalog right now, else None."""
    info = holder(catalog)
    if not info or info.get("kind") != "writer":
        return None
    try:
        os.kill(int(info["pid"]), 0)
    except (KeyError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, another user's
    return info


def describe(info: dict) -> str:
    if not info:
        return "another process"
    what = f"the writer of mesh {info.get('mesh')!r}" if info.get("kind") == "writer" else info.get("kind", "a process")
    return f"{what} (pid {info.get('pid', '?')})"
