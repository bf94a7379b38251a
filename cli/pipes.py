"""`derivs ... | head`: when the reader of stdout goes away, the command ends quietly.

Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError wherever it happens;
a streaming command caught it per event and went on forever, one traceback per event. The
`derivs` group calls `guard_stdout()` once for every command: stdout becomes a thin wrapper that,
on BrokenPipeError, points the real stdout at /dev/null (later writes and the interpreter's last
flush are silent) and then ends the command:

- outside an event loop: SystemExit at once;
- inside one whose command handles Ctrl-C (a stream: `derivs liquidations`): it is sent SIGINT,
  so it stops the way it does on Ctrl-C, closing its connections and its sandbox emulator.

Either way the exit status is 141 (128 + SIGPIPE, what a shell shows for `yes | head`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import click

EXIT_BROKEN_PIPE = 141
_closed = False


class _ExitOnBrokenPipe:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        if _closed:
            return len(text)
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            _reader_gone(self._stream)
            return len(text)

    def flush(self) -> None:
        if _closed:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            _reader_gone(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _reader_gone(stream: Any) -> None:
    global _closed
    _closed = True
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
    if _in_event_loop() and signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, signal.SIG_DFL,
                                                                     signal.SIG_IGN):
        signal.raise_signal(signal.SIGINT)  # the command's own Ctrl-C handling stops it
        return
    raise SystemExit(EXIT_BROKEN_PIPE)


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _exit_status() -> None:
    if _closed:
        raise SystemExit(EXIT_BROKEN_PIPE)


def guard_stdout() -> None:
    """Make sys.stdout end the running command quietly on a broken pipe (see the module doc)."""
    if not isinstance(sys.stdout, _ExitOnBrokenPipe):
        sys.stdout = _ExitOnBrokenPipe(sys.stdout)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(_exit_status)
