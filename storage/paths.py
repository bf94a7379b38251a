"""Can a directory the mesh or the CLI will write (catalog, run directory) be used? Asked before
any work starts, so a bad path is one clear line instead of a traceback after a download."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def directory_problem(path: str | Path, what: str) -> str | None:
    """Why `path` cannot be used as a writable directory (created if missing), or None.

    Nothing is left behind: every existing ancestor must be a directory; an existing directory
    must be writable (access(2), which also says EROFS); a missing one, creatable: a temporary
    file is made (and gone) in its nearest existing ancestor.
    """
    p = Path(path).absolute()
    for ancestor in [p, *p.parents]:
        if ancestor.exists() or ancestor.is_symlink():
            if not ancestor.is_dir():
                kind = "is a file" if ancestor == p else f"cannot be created: {ancestor} is a file"
                return f"{what} {path}: {kind}"
            if ancestor == p:  # existing: asked, never touched (a running mesh's writer owns the catalog)
                return None if os.access(p, os.W_OK | os.X_OK) else f"{what} {path}: not writable"
            try:  # to be created: a real probe in its parent (permissions, read-only or virtual file systems, root)
                tempfile.TemporaryFile(dir=ancestor).close()
            except OSError as exc:
                return f"{what} {path}: cannot be created ({ancestor}: {exc.strerror})"
            return None
    return f"{what} {path}: no existing parent directory"


def data_directory(catalog_root: Path | str, kind: str, instrument_id: str | None = None) -> Path:
    """`<catalog>/data/<kind>/<instrument_id>` (Nautilus's layout; `kind` is the directory name,
    e.g. `custom_gap`). An id is a directory name without '/' (Nautilus's `urisafe_identifier`)."""
    base = Path(catalog_root) / "data" / kind
    return base if instrument_id is None else base / instrument_id.replace("/", "")


def ids_in(catalog_root: Path | str, kind: str) -> list[str]:
    """Instrument ids with a directory under `<catalog>/data/<kind>/`, sorted."""
    base = data_directory(catalog_root, kind)
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
