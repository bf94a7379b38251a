"""`derivs ... | head`: when the reader of stdout goes away, the command ends quietly.

Python ignores SIGPIPE, so a write to a closed pipe raises BrokenPipeError wherever it happens;
a streaming command caught it per event and went on forever, one traceback per event. The
`derivs` group installs `guard_stdout()` once for every command: stdout becomes a thin wrapper
whose write/flush turn BrokenPipeError into SystemExit(141) (128 + SIGPIPE, what a shell shows
for `yes | head`). SystemExit is not an `Exception`, so no handler of a stream swallows it; it
unwinds through asyncio and every `finally` (clients closed, a sandbox emulator stopped).
Real stdout is pointed at /dev/null first, so the interpreter's last flush is silent too.
"""

from __future__ import annotations

import os
import sys
from typing import Any

EXIT_BROKEN_PIPE = 141


class _ExitOnBrokenPipe:
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            _leave(self._stream)
            raise  # unreachable: _leave raises

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            _leave(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _leave(stream: Any) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass
    raise SystemExit(EXIT_BROKEN_PIPE)


def guard_stdout() -> None:
    """Make the current sys.stdout end the program quietly on a broken pipe (idempotent)."""
    if not isinstance(sys.stdout, _ExitOnBrokenPipe):
        sys.stdout = _ExitOnBrokenPipe(sys.stdout)
