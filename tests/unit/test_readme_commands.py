"""Every command the README and docs/ print is one the product accepts: each ``fracture-tune …`` line of a
``bash`` block parses with the real command line, each ``make`` target exists, and the README's Python
block compiles and uses only names ``import fracture_tune as ft`` offers."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT

import fracture_tune as ft
from fracture_tune.cli import build_parser

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# What a reader types in place of a placeholder.
PLACEHOLDERS = {
    "$IMAGES": "/data/xrays",
    "$FRACATLAS_DIR": "/data/fracatlas",
    "<version>": "3",
    "<key>": "5ba89e1bebc5dacc",
    "fracture-classifier/N": "fracture-classifier/3",
}


def _blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


def _command_lines(language: str = "bash") -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in _blocks(page, language):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" #", 1)[0].strip()
                if command.startswith(("fracture-tune ", "make ")):
                    found.append((page.relative_to(REPO_ROOT).as_posix(), command))
    return found


def _argv(command: str) -> list[str]:
    for placeholder, value in PLACEHOLDERS.items():
        command = command.replace(f'"{placeholder}"', value).replace(placeholder, value)
    words = shlex.split(command)[1:]
    return [word for word in words if not word.startswith(("IMG…", "DIR…", "[", "…"))]


COMMANDS = [entry for entry in _command_lines() if entry[1].startswith("fracture-tune ")]


def test_the_pages_print_commands_at_all() -> None:
    assert len(COMMANDS) >= 10 and any(page == "README.md" for page, _ in COMMANDS)


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:60]}" for p, c in COMMANDS])
def test_each_printed_command_parses(page: str, command: str) -> None:
    try:
        build_parser().parse_args(_argv(command))
    except SystemExit as exit:
        pytest.fail(f"{page}: `{command}` is not accepted by the command line (exit {exit.code})")


def test_each_printed_make_target_exists() -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO_ROOT / "Makefile").read_text(), re.M))
    printed = {command.split()[1] for _, command in _command_lines() if command.startswith("make ")}
    assert printed and printed <= targets, sorted(printed - targets)


def test_the_readmes_python_uses_only_the_public_api() -> None:
    (block,) = _blocks(REPO_ROOT / "README.md", "python")
    tree = ast.parse(block)
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and _is_ft(node.value)}
    assert used and used <= set(ft.__all__), sorted(used - set(ft.__all__))
    for name in used:
        assert getattr(ft, name) is not None


def _is_ft(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "ft"
