"""The layout the architecture promises (issue 16): no import cycle in the project's packages, the
emulator's venues in packages that never import one another, the shared engines below them, and
no emulator module over 400 lines.

Imports are read with `ast` (those inside functions and under TYPE_CHECKING count too: an import
moved into a function still ties the modules together). `python tests/unit/test_layout.py` prints
the import graph's figures and any cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("storage", "venues", "actors", "messages", "cli", "emulator", "live")
EMULATED_VENUES = ("binance", "bybit", "hyperliquid")
# The emulator modules that assemble the venues, so may import their packages.
ASSEMBLY = {"emulator.server", "emulator.__main__"}
MAX_LINES = 400


def modules(packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the packages."""
    found = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _known(name: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of the modules."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules among `known` it imports (`from pkg import mod` counts as pkg.mod)."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(filter(None, (_known(a.name, known) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    target = full if full in known else _known(source, known)
                    if target:
                        targets.add(target)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _venue_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "emulator" and parts[1] in EMULATED_VENUES else None


def test_cycles_finds_a_cycle_and_nothing_else() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycle_in_the_emulator() -> None:
    assert cycles(import_graph(modules(("emulator",)))) == []


def test_no_import_cycle_in_the_project() -> None:
    assert cycles(import_graph(modules())) == []


def test_emulated_venues_never_import_one_another_and_the_engines_import_none() -> None:
    graph = import_graph(modules(("emulator",)))
    wrong = []
    for module, targets in graph.items():
        own = _venue_of(module)
        for target in targets:
            venue = _venue_of(target)
            if venue is None or venue == own:
                continue
            if own is not None or module not in ASSEMBLY:
                wrong.append(f"{module} imports {target}")
    assert not wrong, wrong
    assert {v for v in map(_venue_of, graph) if v} == set(EMULATED_VENUES)  # the packages are there


def test_no_emulator_module_over_400_lines() -> None:
    long = {name: n for name, path in modules(("emulator",)).items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, long


def test_every_emulator_module_says_what_it_owns() -> None:
    missing = [name for name, path in modules(("emulator",)).items() if not ast.get_docstring(ast.parse(path.read_text()))]
    assert not missing, missing


if __name__ == "__main__":
    for packages in (("emulator",), PACKAGES):
        graph = import_graph(modules(packages))
        found = cycles(graph)
        print(f"{', '.join(packages)}: {len(graph)} modules, {sum(map(len, graph.values()))} imports, "
              f"{len(found)} cycle(s)")
        for component in found:
            print("  cycle:", " <-> ".join(component))
    sys.exit(1 if found else 0)
