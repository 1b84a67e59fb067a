"""The architecture as a test: imports only go down the floors, and no module imports itself in a circle.

Every ``import`` in the package's source is read with ``ast``: at module level, inside functions and under
``if TYPE_CHECKING:`` alike (a type-only import is still a dependency, and a circle hidden behind
``TYPE_CHECKING`` is still a circle). The floors, bottom up::

    errors, version  ←  data  ←  trainables  ←  classifier  ←  search  ←  cluster  ←  cli, the API

A module may import its own floor and the floors below it. ``search/classifier/`` is the module path of
models logged by fracture-tune 0.1.0 (it re-exports ``classifier.pyfunc_model``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from cli_runs import REPO_ROOT

PACKAGE = "fracture_tune"
# Bottom to top: a module on floor i imports modules of floors <= i only.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("errors", "version"),
    ("data",),
    ("trainables",),
    ("classifier",),
    ("search",),
    ("cluster",),
    ("cli", "__main__", ""),  # "" is the package root's __init__: the Python API
)
ROOT_MODULES = ("__init__", "__main__", "cli", "errors", "version")
THIRD_PARTY_FREE = {
    "errors": ("ray", "optuna", "mlflow", "torch"),
    "version": ("ray", "optuna", "mlflow", "torch"),
    "data": ("ray", "optuna", "mlflow"),
    "trainables": ("ray", "optuna", "mlflow"),
    "classifier": ("ray", "optuna"),
}


def _modules() -> dict[str, Path]:
    found = {
        ".".join((PACKAGE, name)).removesuffix(".__init__"): REPO_ROOT / f"{name}.py" for name in ROOT_MODULES
    }
    for folder in {room for floor in FLOORS for room in floor} - {*ROOT_MODULES, ""}:
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            found[".".join((PACKAGE, *parts)).removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, type-only imports included (absolute names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {imported for imported in _imports(path) if imported in modules}
        for name, path in modules.items()
    }


def _room(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def _floor(module: str) -> int:
    return next(index for index, floor in enumerate(FLOORS) if _room(module) in floor)


def test_every_module_is_on_a_floor() -> None:
    rooms = {path.name for path in REPO_ROOT.iterdir() if (path / "__init__.py").is_file()}
    on_floors = {room for floor in FLOORS for room in floor}
    assert rooms <= on_floors, f"folders of the package on no floor: {sorted(rooms - on_floors)}"
    modules = {path.stem for path in REPO_ROOT.glob("*.py")}
    assert modules <= {*ROOT_MODULES}, f"root modules on no floor: {sorted(modules - {*ROOT_MODULES})}"


def test_imports_only_go_down() -> None:
    broken = sorted(
        f"{module} (floor {_floor(module)}) imports {imported} (floor {_floor(imported)})"
        for module, imports in _graph().items()
        for imported in imports
        if _floor(imported) > _floor(module)
    )
    assert not broken, "\n".join(broken)


def test_lower_floors_never_import_ray_optuna_mlflow_or_torch() -> None:
    allowed = {"fracture_tune.trainables.tune_adapter"}  # the one module of trainables that calls ray.tune
    broken = []
    for module, path in _modules().items():
        banned = THIRD_PARTY_FREE.get(_room(module), ())
        if module not in allowed:
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
