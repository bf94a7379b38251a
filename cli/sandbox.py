"""Emulator URLs for `--sandbox`: from a ready file of a running emulator, or a private one."""

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click

from emulator.process import EmulatorDidNotStart, spawn_emulator


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
        try:
            emu = spawn_emulator(Path(tmp) / "ready.json", "--venues", ",".join(venues),
                                 "--ground-truth", str(Path(tmp) / "gt.jsonl"), poll_s=0.02)
        except EmulatorDidNotStart:
            raise click.ClickException("the venue emulator did not start (try: python -m emulator)") from None
        with emu:
            yield emu.urls
