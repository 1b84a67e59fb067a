"""`fracture-tune demo` runs the very `search` and `retrain` commands a user would type, in that order,
and stops with an error naming the command that failed instead of carrying on."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pytest

from fracture_tune import cli
from fracture_tune.data.prepare_settings import config_path
from fracture_tune.errors import FractureTuneError
from fracture_tune.search.demo_cli import run_demo


class _RecordingCli:
    """Stands in for `fracture-tune`: records each argv and answers with the next status."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> int:
        self.calls.append(list(argv))
        return self.statuses.pop(0)


def _demo_args(argv: list[str], recorder: _RecordingCli) -> argparse.Namespace:
    args = cli.build_parser().parse_args(["demo", *argv])
    args.cli_main = recorder
    return args


def test_the_demo_runs_search_then_retrain_and_names_the_failed_retrain(
    capsys: pytest.CaptureFixture[str],
) -> None:
    recorder = _RecordingCli(0, 4)
    args = _demo_args(["--name", "d1", "--retrain-epochs", "7", "--tracking-uri", "sqlite:///t.db"], recorder)
    with pytest.raises(
        FractureTuneError, match=r"`fracture-tune retrain --search d1 .*` failed with exit status 4"
    ):
        run_demo(args)
    search, retrain = recorder.calls
    quickstart = str(config_path("quickstart"))
    assert search == ["search", "--config", quickstart, "--name", "d1", "--tracking-uri", "sqlite:///t.db"]
    assert retrain == ["retrain", "--search", "d1", "--epochs", "7", "--tracking-uri", "sqlite:///t.db"]
    assert "$ fracture-tune search --config" in capsys.readouterr().out  # the user sees each command run


def test_a_failed_search_stops_the_demo_before_retrain() -> None:
    recorder = _RecordingCli(2)
    with pytest.raises(
        FractureTuneError, match="`fracture-tune search .*` failed with exit status 2"
    ) as error:
        run_demo(_demo_args([], recorder))
    assert [call[0] for call in recorder.calls] == ["search"]
    assert recorder.calls[0][recorder.calls[0].index("--name") + 1].startswith("demo-")
    assert "--tracking-uri" not in recorder.calls[0]
    assert error.value.hint and "rerun that command" in error.value.hint


def test_through_the_cli_a_failed_step_exits_2_with_the_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = _RecordingCli(1)
    real_build_parser = cli.build_parser

    def parser_with_recorder() -> argparse.ArgumentParser:
        parser = real_build_parser()
        parser.set_defaults(cli_main=recorder)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_recorder)
    assert cli.main(["demo", "--name", "d2"]) == 2
    assert "error: `fracture-tune search --config" in capsys.readouterr().err
    assert len(recorder.calls) == 1
