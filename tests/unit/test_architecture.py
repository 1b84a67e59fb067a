"""The architecture as a test: the import direction between the layers, and no import cycles.

Every ``import`` in the package's source is read with ``ast`` (module level and inside functions; imports
under ``if TYPE_CHECKING:`` are left out: they never run). Layers: ``data`` ← ``trainables`` ← ``search``;
``search.classifier`` builds on ``search``, never the reverse; ``cluster`` sits beside ``search``; only the
command line modules reach across (``search/cli.py`` lists every command, ``cluster/jobs_cli.py`` parses
the search command it submits).
"""

from __future__ import annotations

import ast
from pathlib import Path

from cli_runs import REPO_ROOT

PACKAGE = "fracture_tune"
LAYER_FOLDERS = ("data", "trainables", "search", "cluster")
# (importing layer, imported layer) pairs that must never occur.
FORBIDDEN = {
    ("data", "trainables"), ("data", "search"), ("data", "cluster"),
    ("trainables", "search"), ("trainables", "cluster"),
    ("search", "search.classifier"), ("search", "cluster"),
    ("cluster", "search"), ("cluster", "trainables"),
}  # fmt: skip
COMMAND_LINE = {
    "fracture_tune.search.cli", "fracture_tune.search.search_cli", "fracture_tune.search.demo_cli",
    "fracture_tune.cluster.jobs_cli",
}  # fmt: skip
THIRD_PARTY_FREE = {"data": ("ray", "optuna", "mlflow"), "trainables": ("ray", "optuna", "mlflow")}


def _modules() -> dict[str, Path]:
    found = {PACKAGE: REPO_ROOT / "__init__.py"}
    for folder in LAYER_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join((PACKAGE, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports when it runs (absolute names)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {imported for imported in _imports(path) if imported in modules}
        for name, path in modules.items()
    }


def _layer(module: str) -> str:
    parts = module.split(".")[1:]
    if parts[:2] == ["search", "classifier"]:
        return "search.classifier"
    return parts[0] if parts else ""


def test_layers_import_only_downwards() -> None:
    broken = sorted(
        f"{module} imports {imported}"
        for module, imports in _graph().items()
        if module not in COMMAND_LINE
        for imported in imports
        if (_layer(module), _layer(imported)) in FORBIDDEN
    )
    assert not broken, "\n".join(broken)


def test_data_and_trainables_never_import_ray_optuna_or_mlflow() -> None:
    allowed = {"fracture_tune.trainables.tune_adapter"}  # the one module that calls ray.tune
    broken = []
    for module, path in _modules().items():
        banned = THIRD_PARTY_FREE.get(_layer(module), ())
        if module in allowed:
            continue
        broken += [f"{module} imports {name}" for name in _imports(path) if name.split(".")[0] in banned]
    assert not broken, "\n".join(broken)


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                walk(imported, [*path, imported])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)
