"""emulator/process.py: the one helper that spawns `python -m emulator` and waits for its ready file."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from emulator.process import EmulatorDidNotStart, spawn_emulator

ROOT = Path(__file__).resolve().parents[2]


def test_spawn_returns_the_ready_files_urls_and_stop_ends_the_process(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    with spawn_emulator(ready, "--venues", "bybit", log=tmp_path / "emu.log", cwd=ROOT) as emu:
        assert emu.urls == json.loads(ready.read_text()) and list(emu.urls) == ["bybit"]
        with urllib.request.urlopen(emu.urls["bybit"] + "/v5/market/time", timeout=10) as answer:
            assert json.loads(answer.read())["retCode"] == 0  # the venue it names answers
        assert emu.proc.poll() is None and emu.startup_s > 0
    assert emu.proc.returncode == 0  # SIGTERM: a clean exit


def test_an_emulator_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(EmulatorDidNotStart, match=r"exited with code 2(.|\n)*kraken"):
        spawn_emulator(tmp_path / "ready.json", "--venues", "kraken", log=tmp_path / "emu.log", cwd=ROOT)
    assert not (tmp_path / "ready.json").exists()
