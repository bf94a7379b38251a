"""Can a directory the mesh or the CLI will write (catalog, run directory) be used? Asked before
any work starts, so a bad path is one clear line instead of a traceback after a download."""

from __future__ import annotations

import tempfile
from pathlib import Path


def directory_problem(path: str | Path, what: str) -> str | None:
    """Why `path` cannot be used as a writable directory (created if missing), or None.

    Nothing is created: every existing ancestor must be a directory, and a file must be
    creatable in the nearest existing one (the directory itself when it exists).
    """
    p = Path(path).absolute()
    for ancestor in [p, *p.parents]:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                kind = "is a file" if ancestor == p else f"cannot be created: {ancestor} is a file"
                return f"{what} {path}: {kind}"
            try:  # a real probe: permissions, read-only file systems and root alike
                tempfile.TemporaryFile(dir=ancestor).close()
            except OSError as exc:
                if ancestor == p:
                    return f"{what} {path}: not writable ({exc.strerror})"
                return f"{what} {path}: cannot be created ({ancestor}: {exc.strerror})"
            return None
    return f"{what} {path}: no existing parent directory"
