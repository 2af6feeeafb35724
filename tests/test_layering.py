"""Imports flow one way: every floor imports only the floors below it.

Every import statement in ``plait/`` and ``plait_jupyter/`` is read with
`ast`: module level, inside functions and under ``if TYPE_CHECKING:``. The
floors, bottom up, are values → parameter → module → tracing/graph →
execution/resources/clients → optimization/profiling → the ``plait`` facade →
plait_jupyter. Modules on one floor may import each other, but no import
cycle is allowed anywhere, between modules or between packages (folders). Function-local imports of optional extras (pandas,
plotly...) are third-party and do not appear in this graph. The one way up is
`plait._upcalls` (call-time lookups by name), checked separately below.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path

from plait._upcalls import UPCALLS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("plait", "plait_jupyter")

# Bottom up; a module belongs to the floor of its longest matching prefix.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "plait.errors",
            "plait._tree",
            "plait._upcalls",
            "plait.schema",
            "plait._checks",
            "plait._format",
        ),
    ),
    ("values", ("plait.values",)),
    ("parameter", ("plait.parameter", "plait._context")),
    ("module", ("plait.module", "plait.containers")),
    (
        "tracing/graph",
        (
            "plait.markers",
            "plait.ops",
            "plait.tracing",
            "plait.functional",
            "plait.graph",
            "plait.graph_analysis",
            "plait.graph_export",
        ),
    ),
    (
        "execution/resources/clients",
        (
            "plait.execution",
            "plait.resources",
            "plait.clients",
            "plait.simulator",
            "plait.inference",
        ),
    ),
    (
        "optimization/profiling",
        (
            "plait.optimization",
            "plait.profiling",
            "plait.stock",
            "plait.evaluation",
            "plait.otel",
            "plait.ray",
        ),
    ),
    ("facade", ("plait", "plait.demo", "plait.__main__")),
    ("plait_jupyter", ("plait_jupyter",)),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _owner(name: str) -> str | None:
    """The module ``name`` refers to (a module, or an attribute of one), if it is ours."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # `from plait import functional` imports the module plait.functional.
    return [f"{base}.{alias.name}" for alias in node.names]


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module of ours: line}, counting every import statement."""
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules().items():
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _targets(module, path, node):
                    owner = _owner(target)
                    if owner is not None and owner != module:
                        edges.setdefault(owner, node.lineno)
    return graph


def floor_of(module: str) -> int:
    best, floor = -1, None
    for index, (_, prefixes) in enumerate(FLOORS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best and (prefix != "plait" or module == "plait"):
                best, floor = len(prefix), index
    assert floor is not None, f"{module} is on no floor: add it to FLOORS in {__file__}"
    return floor


def _where(module: str, line: int) -> str:
    return f"{modules()[module].relative_to(ROOT)}:{line}"


def test_the_graph_sees_lazy_and_type_checking_imports():
    # Guards the reader itself: a local import and a relative import are found.
    graph = import_graph()
    assert "plait.values" in graph["plait.functional._core"]
    assert "plait.execution.result" in graph["plait.execution.rerun"]
    assert len(modules()) > 80


def test_every_module_is_on_a_floor():
    for module in modules():
        floor_of(module)


def test_plait_never_imports_plait_jupyter():
    bad = [
        f"{_where(module, line)} imports {target}"
        for module, edges in import_graph().items()
        if module.split(".")[0] == "plait"
        for target, line in edges.items()
        if target.split(".")[0] == "plait_jupyter"
    ]
    assert not bad, "\n".join(bad)


def test_every_import_goes_down_or_stays_on_its_floor():
    bad = [
        f"{_where(module, line)}: {module} ({FLOORS[floor_of(module)][0]}) imports "
        f"{target} ({FLOORS[floor_of(target)][0]}), a floor above"
        for module, edges in import_graph().items()
        for target, line in edges.items()
        if floor_of(target) > floor_of(module)
    ]
    assert not bad, "\n".join(bad)


def _find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in graph.get(module, {}):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module)
            if found:
                return found
    return None


def test_no_import_cycle():
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _package(module: str) -> str:
    """The folder a module lives in (``plait.execution.run`` -> ``plait.execution``), or itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if (ROOT / Path(*parts[:2])).is_dir() else module


def test_no_import_cycle_between_packages():
    # A folder that imports a folder importing it is a cycle too, even when no module cycles.
    packages: dict[str, dict[str, int]] = {}
    for module, edges in import_graph().items():
        source = packages.setdefault(_package(module), {})
        for target, line in edges.items():
            if _package(target) != _package(module):
                source.setdefault(_package(target), line)
    cycle = _find_cycle(packages)
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b": 1}, "b": {}}) is None


def test_only_the_seam_imports_by_name():
    # importlib.import_module / __import__ would hide an import from this test.
    bad = []
    for module, path in modules().items():
        if module == "plait._upcalls":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in ("importlib.import_module", "__import__", "import_module"):
                    bad.append(f"{_where(module, node.lineno)}: {name}")
    assert not bad, "\n".join(bad)


def test_each_upcall_names_a_real_implementation_on_a_higher_floor():
    # The seam's callers live on the values floor and up; each target sits above its callers.
    callers = {
        module
        for module, edges in import_graph().items()
        if "plait._upcalls" in edges and module.split(".")[0] == "plait"
    }
    assert callers, "nobody uses the seam: remove it"
    for name, (module, attribute) in UPCALLS.items():
        assert callable(getattr(importlib.import_module(module), attribute)), name
        users = [c for c in callers if f'"{name}"' in modules()[c].read_text(encoding="utf-8")]
        for user in users:
            assert floor_of(module) >= floor_of(user), f"{name}: {module} is below {user}"
