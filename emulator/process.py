"""Owns spawning ``python -m emulator`` as a child process and waiting for its ready file.

The one way the CLI (`cli/sandbox.py`), the tests and the benchmarks start an emulator of their
own; the coordinator supervises its emulator as one of its actors instead. Import-light on
purpose (no aiohttp): the CLI imports it on every `--sandbox` call.

    with spawn_emulator(tmp / "ready.json", "--venues", "bybit") as emu:
        emu.urls["bybit"]   # "http://127.0.0.1:PORT"

The emulator writes its ready file atomically (temp file + rename) once every listener is bound,
so the file existing means it is complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

READY_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 5.0


class EmulatorDidNotStart(RuntimeError):
    """The emulator exited, or did not write its ready file in time (the log's tail is in the message)."""


@dataclass
class EmulatorProcess:
    """A running ``python -m emulator``: its process, the venue URLs of its ready file and how long
    it took to get ready. ``stop()`` (or leaving the ``with`` block) ends it."""

    proc: subprocess.Popen
    urls: dict[str, str]
    ready_file: Path
    startup_s: float
    log: Path | None = field(default=None, repr=False)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = _STOP_TIMEOUT_S) -> float:
        """Signal the emulator and wait for it to exit (killed after `timeout_s`); seconds it took."""
        return stop_process(self.proc, sig, timeout_s)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = _STOP_TIMEOUT_S) -> float:
    """Send `sig`, wait up to `timeout_s`, then kill; how long it took to exit (0 if already gone)."""
    if proc.poll() is not None:
        return 0.0
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.monotonic() - start


def spawn_emulator(ready_file: str | os.PathLike[str], *args: str, log: str | os.PathLike[str] | None = None,
                   cwd: str | os.PathLike[str] | None = None, timeout_s: float = READY_TIMEOUT_S,
                   poll_s: float = 0.01) -> EmulatorProcess:
    """Run ``python -m emulator --ready-file READY_FILE ARGS...`` and return once it is ready.

    `log` receives the emulator's stdout and stderr (None: discarded). A stale ready file is
    removed first. If the emulator exits or is not ready within `timeout_s`, it is stopped and
    `EmulatorDidNotStart` is raised.
    """
    ready = Path(ready_file)
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "emulator", "--ready-file", str(ready), *args]
    log_path = Path(log) if log is not None else None
    start = time.monotonic()
    if log_path is None:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        with log_path.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise EmulatorDidNotStart(f"the emulator exited with code {proc.returncode}{_tail(log_path)}")
            if time.monotonic() - start > timeout_s:
                raise EmulatorDidNotStart(f"the emulator was not ready after {timeout_s:g} s{_tail(log_path)}")
            time.sleep(poll_s)
        startup_s = time.monotonic() - start
        return EmulatorProcess(proc, json.loads(ready.read_text()), ready, startup_s, log_path)
    except BaseException:
        stop_process(proc)
        raise


def _tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return ":\n" + log.read_text(errors="replace")[-chars:]
