"""Every module with logic has its unit test file at the mirrored path: ``classifier/predict.py`` ->
``tests/unit/classifier/test_predict.py``, ``cli.py`` -> ``tests/unit/test_cli.py``."""

from __future__ import annotations

import ast
from pathlib import Path

from cli_runs import REPO_ROOT

ROOMS = ("data", "trainables", "classifier", "search", "cluster")


def _modules_with_logic() -> list[str]:
    paths = [*REPO_ROOT.glob("*.py"), *(p for room in ROOMS for p in (REPO_ROOT / room).rglob("*.py"))]
    found = []
    for path in paths:
        if path.name in {"__init__.py", "__main__.py"}:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) for node in ast.walk(tree)):
            found.append(path.relative_to(REPO_ROOT).as_posix())
    return sorted(found)


def _mirror(module: str) -> Path:
    path = Path(module)
    return REPO_ROOT / "tests" / "unit" / path.parent / f"test_{path.name}"


def test_every_module_with_logic_has_its_mirrored_unit_test() -> None:
    missing = [m for m in _modules_with_logic() if not _mirror(m).is_file()]
    assert not missing, "no mirrored unit test file for: " + ", ".join(missing)
