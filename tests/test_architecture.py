"""The shape of the code, checked: a pure core, two sides that never import each other.

The sans-IO core is what makes possim deterministic and fuzzable: if any state machine or
protocol module could read a clock or open a socket, a run would stop being a function of
its inputs. The check is transitive: a pure module may not import, through any chain of
possim's own modules, one that does I/O.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

from possim.protocol import transports

ROOT = Path(__file__).resolve().parent.parent
#: The folders of the sans-IO core; they install as ``possim.protocol``, ``possim.pos_sim``, ``possim.acquirer_sim``.
CORE = ("protocol", "pos_sim", "acquirer_sim")
#: What a pure module must never reach: clocks, sockets, threads, the event loop, logging sinks.
IO = frozenset({"asyncio", "socket", "time", "threading", "selectors", "structlog", "aiomqtt", "paho", "subprocess"})
#: Modules allowed to do I/O: transports, drivers' hosts, the CLI and the views. Everything else
#: under protocol/, pos_sim/ and acquirer_sim/ is pure, and so is the checker.
#: The wires of real-loop transports come from the transport registry: a new transport's module is
#: an adapter by being registered, with no edit here.
WIRES = frozenset(t.module for t in transports.REGISTRY.values() if not t.virtual_time)
ADAPTERS = WIRES | frozenset({
    "possim.protocol.transports",
    # storage: SQLite files, fsync, waiting for a lock (the state machines get them injected)
    "possim.protocol.storage", "possim.acquirer_sim.ledger", "possim.pos_sim.journal"})
EXTRA_PURE = ("possim.judging.checker",)


def _module_name(path: Path) -> str:
    """The installed name of a source file: ``protocol/codec.py`` is ``possim.protocol.codec``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[0] in CORE or parts[0] == "scenarios":
        parts = ("possim", *parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(name: str) -> str:
    """``possim.pos_sim.terminal`` -> ``pos_sim``; ``possim.api`` -> ``possim``; ``asyncio.x`` -> ``asyncio``."""
    parts = name.split(".")
    if parts[0] == "possim" and len(parts) > 1 and parts[1] in CORE:
        return parts[1]
    return parts[0]


def _path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _imports(module: str) -> frozenset[str]:
    path = _path(module)
    if path is None:
        return frozenset()
    names: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return frozenset(names)


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` imports exist for the type checker only, never at run time."""
    return isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def _reach(module: str) -> set[str]:
    """Every module name ``module`` imports, following possim's own modules transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        for name in _imports(todo.pop()):
            if name in seen:
                continue
            seen.add(name)
            if name.split(".")[0] == "possim" and _path(name) is not None:
                todo.append(name)
    return seen


def _pure_modules() -> list[str]:
    found = [_module_name(p) for pkg in CORE for p in (ROOT / pkg).rglob("*.py")]
    return sorted({m for m in found if m not in ADAPTERS} | set(EXTRA_PURE))


PURE = _pure_modules()


def test_the_core_modules_are_all_covered() -> None:
    named = {"possim.protocol.messages", "possim.protocol.codec", "possim.protocol.mti", "possim.protocol.faults",
             "possim.protocol.latency", "possim.protocol.framing", "possim.pos_sim.terminal",
             "possim.acquirer_sim.host", "possim.pos_sim.actions", "possim.pos_sim.records", "possim.judging.checker"}
    assert named <= set(PURE)


@pytest.mark.parametrize("module", PURE)
def test_pure_module_does_no_io(module: str) -> None:
    reached = {name.split(".")[0] for name in _reach(module)}
    assert not reached & IO, f"{module} reaches {sorted(reached & IO)}"


@pytest.mark.parametrize(("side", "other"), [("pos_sim", "acquirer_sim"), ("acquirer_sim", "pos_sim")])
def test_the_two_sides_never_import_each_other(side: str, other: str) -> None:
    for path in (ROOT / side).rglob("*.py"):
        reached = {_layer(name) for name in _reach(_module_name(path))}
        assert other not in reached, f"{_module_name(path)} reaches {other}"
        assert "possim" not in reached, f"{_module_name(path)} reaches the orchestration layer"


def test_nothing_imports_the_core_by_a_name_possim_does_not_own() -> None:
    """A user's own ``protocol/`` or ``scenarios/`` package must not shadow possim's (or be shadowed by it)."""
    sources = [p for top in (*CORE, "possim", "scenarios", "tests", "bench") for p in (ROOT / top).rglob("*.py")]
    bare = {*CORE, "scenarios"}
    for path in sources:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                     else [])
            for name in names:
                assert name.split(".")[0] not in bare, f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"


def _runtime_imports(module: str) -> set[str]:
    """possim modules ``module`` imports at run time: at module level or inside functions (on first use),
    but not under ``if TYPE_CHECKING:`` (for the type checker only)."""
    path = _path(module)
    if path is None:
        return set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node.test)
                   for n in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("possim"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "possim":
            subs = {f"{node.module}.{a.name}" for a in node.names}
            modules = {name for name in subs if _path(name) is not None}
            # ``from possim.cli import inputs`` needs the module, not what possim/cli/__init__.py imports
            found.update(modules if modules == subs else {node.module, *modules})
    return {name for name in found if name != module and _path(name) is not None}


def _possim_modules() -> list[str]:
    folders = [ROOT / "possim", *(ROOT / pkg for pkg in CORE)]
    names = {_module_name(p) for folder in folders for p in folder.rglob("*.py") if "data" not in p.parts}
    return sorted(n for n in names if n.startswith("possim"))


def test_possim_has_no_import_cycles() -> None:
    """No two of possim's modules import each other, directly or through others (a lazy import counts too).

    A circle makes the import order matter (a name missing halfway through a circle) and ties two modules,
    often two rooms, into one: whoever changes one must understand both.
    """
    graph = {m: _runtime_imports(m) for m in _possim_modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                cycles.append(sorted(part))

    for module in graph:
        if module not in index:
            connect(module)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
