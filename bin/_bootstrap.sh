# Sourced by every bin/ script: make sure .venv exists with Python >= 3.12 and the project installed.
# Re-installs when pyproject.toml is newer than the marker, so a pull that adds a dependency just works.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
MARKER="$VENV/.installed"

find_python() {
    for cand in "${PYTHON:-}" python3.13 python3.12 python3; do
        [ -n "$cand" ] || continue
        if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
            command -v "$cand"; return 0
        fi
    done
    # pyenv installs are not always on PATH: look for the newest 3.12+/3.13 there.
    for dir in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13* "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*; do
        [ -x "$dir/bin/python3" ] && { echo "$dir/bin/python3"; return 0; }
    done
    return 1
}

if [ ! -f "$MARKER" ] || [ "$ROOT/pyproject.toml" -nt "$MARKER" ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        PY="$(find_python)" || { echo "error: Python >= 3.12 not found (nautilus_trader 1.231 needs it). Install python3.12 or set PYTHON=/path/to/python3.12." >&2; exit 1; }
        echo "bootstrap: creating .venv with $PY" >&2
        "$PY" -m venv "$VENV" || exit 1
    fi
    echo "bootstrap: installing the project and its dependencies into .venv (first run only)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2 || exit 1
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" >&2 || exit 1
    touch "$MARKER"
fi
export PATH="$VENV/bin:$PATH"
