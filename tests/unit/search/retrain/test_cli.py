"""`fracture-tune retrain`'s flags come from ``RetrainOptions``: one flag per option, with its default and
type; docs/model.md's table is the one ``options_table`` derives."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT

from fracture_tune.cli import build_parser
from fracture_tune.search.retrain.cli import option_flag, options_from_args, options_table
from fracture_tune.search.retrain.types import RetrainOptions, option_spec

FIELDS = dataclasses.fields(RetrainOptions)


def _retrain_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    assert parser._subparsers is not None
    subcommands = next(action for action in parser._subparsers._group_actions if action.choices)
    return subcommands.choices["retrain"]  # type: ignore[index]


def test_the_command_offers_every_option_under_its_flag_with_its_default() -> None:
    parser = _retrain_parser()
    flags = {flag: action.dest for action in parser._actions for flag in action.option_strings}
    for field in FIELDS:
        if option_spec(field.name).command_value is None:
            assert flags.get(option_flag(field.name)) == field.name, field.name
        else:  # set by the command itself: no flag reaches it
            assert field.name not in flags.values() and option_flag(field.name) == "", field.name
    # Parsed with only a source, every option holds its default (or the command's value): exactly
    # RetrainOptions(search=..., progress=True).
    args = build_parser().parse_args(["retrain", "--search", "s1"])
    assert options_from_args(args) == RetrainOptions(search="s1", progress=True)


def test_the_command_always_shows_progress_and_offers_no_flag_for_it() -> None:
    """A retrain on the command line prints a line per epoch; ``ft.retrain`` prints nothing unless asked."""
    assert options_from_args(build_parser().parse_args(["retrain", "--search", "s1"])).progress is True
    assert RetrainOptions(search="s1").progress is False
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--search", "s1", "--progress"])


def test_flags_reach_the_options_with_their_types() -> None:
    args = build_parser().parse_args(
        [
            "retrain",
            "--config-json",
            "c.json",
            "--dataset",
            "d",
            "--out",
            "o",
            "--epochs",
            "3",
            "--target-sensitivity",
            "0.8",
            "--no-register",
            "--no-baseline",
            "--rerank",
            "3",
            "--device",
            "cpu",
        ]
    )
    options = options_from_args(args)
    assert options.config == Path("c.json") and options.dataset == Path("d") and options.out_dir == Path("o")
    assert (options.epochs, options.target_sensitivity, options.rerank_top_k) == (3, 0.8, 3)
    assert options.register is False and options.baseline is False and options.device == "cpu"


def test_the_sources_exclude_each_other_and_one_is_needed() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--search", "s1", "--run-id", "r"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["retrain", "--epochs", "3"])


def test_docs_list_the_options_as_they_are_defined() -> None:
    table = options_table()
    docs = (REPO_ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    assert table in docs, f"docs/model.md's retrain options table is out of date; it should read:\n{table}"
