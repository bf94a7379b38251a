"""Emulator URLs for `--sandbox`: from a ready file of a running emulator, or a private one."""

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import click

READY_TIMEOUT_S = 20.0


@contextlib.contextmanager
def emulator_urls(sandbox: bool, emulator_file: str | None, venues: list[str]) -> Iterator[dict[str, str] | None]:
    """None for the real venues; {venue: url} for an emulator (started here if no file given)."""
    if emulator_file:
        try:
            yield json.loads(Path(emulator_file).read_text())
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"--emulator {emulator_file}: cannot read the emulator's URLs: {exc}") from None
        return
    if not sandbox:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="derivs-emu-") as tmp:
        ready = Path(tmp) / "ready.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--venues", ",".join(venues), "--ready-file", str(ready), "--ground-truth", str(Path(tmp) / "gt.jsonl")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not ready.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise click.ClickException("the venue emulator did not start (try: python -m emulator)")
                time.sleep(0.02)
            yield json.loads(ready.read_text())
        finally:
            proc.terminate()
            proc.wait(5)
