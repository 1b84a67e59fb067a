"""`fracture-tune`'s exit codes: a user's mistake prints `error:`/`hint:` and exits 2 without a traceback,
a bare `fracture-tune` shows the help, Ctrl-C exits 130 and `... | head` closing the pipe is not an error."""

from __future__ import annotations

import argparse

import pytest

from fracture_tune import cli
from fracture_tune.cluster import cli as cluster_cli
from fracture_tune.errors import FractureTuneError


def _handler_for_cluster_status(monkeypatch: pytest.MonkeyPatch, handler: object) -> None:
    # `register` runs on every build_parser, so `cluster status` dispatches to the replacement.
    monkeypatch.setattr(cluster_cli, "_cluster_status", handler)


def test_a_fracture_tune_error_prints_error_and_hint_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(args: argparse.Namespace) -> int:
        raise FractureTuneError("config.yaml: key 'epochs' must be > 0", hint="set epochs: 5")

    _handler_for_cluster_status(monkeypatch, fails)
    assert cli.main(["cluster", "status"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: config.yaml: key 'epochs' must be > 0",
        "hint: set epochs: 5",
    ]
    assert "Traceback" not in captured.err and captured.out == ""


def test_no_subcommand_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    out = capsys.readouterr().out
    assert out.startswith("usage: fracture-tune")
    for command in ("search", "retrain", "cluster", "submit", "demo"):
        assert command in out


@pytest.mark.parametrize(("returned", "status"), [(None, 0), (0, 0), (1, 1), (3, 3)])
def test_the_handlers_return_value_is_the_exit_status(
    monkeypatch: pytest.MonkeyPatch, returned: int | None, status: int
) -> None:
    _handler_for_cluster_status(monkeypatch, lambda args: returned)
    assert cli.main(["cluster", "status"]) == status


def test_interrupt_exits_130_and_a_closed_pipe_exits_0(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    _handler_for_cluster_status(monkeypatch, interrupted)
    assert cli.main(["cluster", "status"]) == 130
    assert "interrupted" in capfd.readouterr().err

    def reader_left(args: argparse.Namespace) -> int:
        raise BrokenPipeError

    _handler_for_cluster_status(monkeypatch, reader_left)
    assert cli.main(["cluster", "status"]) == 0  # stdout now goes to /dev/null; capfd restores fd 1 after
    assert capfd.readouterr().err == ""
