"""`fracture-tune search`'s flags and ``fracture_tune.run_search``/``resume_search`` take the same options,
with the same defaults: the command line is a thin layer over the API."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import fracture_tune as ft
from fracture_tune.cli import build_parser
from fracture_tune.search import search_cli


def test_every_run_time_flag_is_a_keyword_of_run_search_and_resume_search() -> None:
    args = build_parser().parse_args(["search", "--config", "quickstart"])
    options = search_cli._api_options(args)
    for function in (ft.run_search, ft.resume_search):
        parameters = inspect.signature(function).parameters
        assert set(options) <= set(parameters), f"{function.__name__} lacks {set(options) - set(parameters)}"
        for name, value in options.items():
            default = parameters[name].default
            if name == "progress":  # the command line prints progress; the API is silent unless asked
                assert (value, default) == (True, False)
            elif name == "storage":
                assert Path(value) == Path(default)
            else:
                assert value == default, (
                    f"--{name.replace('_', '-')} defaults to {value!r}, the API to {default!r}"
                )


def test_run_search_has_no_keyword_the_command_line_cannot_set() -> None:
    args = build_parser().parse_args(["search", "--config", "quickstart"])
    offered = {"config", "name", *search_cli._api_options(args)}
    assert set(inspect.signature(ft.run_search).parameters) == offered


def test_an_address_runs_the_installed_hooks_before_the_search(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str | None] = []
    monkeypatch.setitem(search_cli.ADDRESS_HOOKS, "test", seen.append)
    search_cli._api_options(build_parser().parse_args(["search", "--config", "q", "--address", "h:6379"]))
    assert seen == ["h:6379"]
    assert "local cluster token" in search_cli.ADDRESS_HOOKS  # cluster's commands installed theirs
