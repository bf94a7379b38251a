"""Logging for every process: one loguru line per operation with time, actor, venue, outcome.

Lines go to stderr and to `<run_dir>/logs/<actor>.log` (plus `.jsonl` when `log_json`), the
files mode 0600 inside a 0700 directory.
"""

import os
import sys
from pathlib import Path

from loguru import logger

FORMAT = "{time:YYYY-MM-DDTHH:mm:ss.SSS!UTC}Z | {level: <7} | {extra[actor]: <22} | {extra[venue]: <11} | {message}"


def setup_logging(actor: str, run_dir: str | os.PathLike | None = None, *, json: bool = False, level: str = "INFO") -> None:
    """Configure loguru for this process; `actor` names it in every line."""
    logger.remove()
    logger.configure(extra={"actor": actor, "venue": "-"})
    logger.add(sys.stderr, format=FORMAT, level=level, enqueue=False, colorize=False)
    if run_dir is not None:
        logs = Path(run_dir) / "logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(logs, 0o700)
        opener = lambda path, flags: os.open(path, flags, 0o600)  # noqa: E731 - logs may hold addresses, keep them private
        logger.add(logs / f"{actor}.log", format=FORMAT, level="DEBUG", opener=opener)
        if json:
            logger.add(logs / f"{actor}.jsonl", serialize=True, level="DEBUG", opener=opener)


def make_private_dir(path: str | os.PathLike) -> Path:
    """Create a directory (and parents) closed to other users."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid != os.getuid():  # e.g. a /tmp directory planted by another user
        raise PermissionError(f"{path} belongs to another user (uid {path.stat().st_uid}): refusing to use it")
    os.chmod(path, 0o700)
    return path
