"""Tracking URIs, redaction, run names and the progress line: what users see in MLflow and the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.search.mlflow_callback import run_name_for, stop_reason, trial_index
from fracture_tune.search.progress import progress_line
from fracture_tune.search.tracking import artifact_location_for, redact_uri, resolve_tracking_uri


def test_default_tracking_uri_is_an_absolute_sqlite_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert artifact_location_for(resolve_tracking_uri()) == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_precedence_cli_then_env_then_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri("http://cli:5000", "http://cfg:5000") == "http://cli:5000"
    assert resolve_tracking_uri(None, "http://cfg:5000") == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(None, "http://cfg:5000") == "http://cfg:5000"
    assert artifact_location_for("http://cfg:5000") is None


def test_passwords_never_shown() -> None:
    assert redact_uri("https://ann:s3cret@mlflow.example.org/") == "https://ann:***@mlflow.example.org/"
    assert (
        redact_uri("postgresql://u:pw@db:5432/mlflow?password=x")
        == "postgresql://u:***@db:5432/mlflow?password=***"
    )
    assert redact_uri("sqlite:////abs/mlflow.db") == "sqlite:////abs/mlflow.db"
    assert redact_uri("http://token@host:5000") == "http://token@host:5000"


def test_run_names_come_from_the_config() -> None:
    config = {"model": "tunable_cnn", "lr": 0.0032, "batch_size": 32}
    assert run_name_for(config, 7) == "tunable_cnn lr=3.2e-03 bs=32 #0007"
    assert trial_index("12_lr=0.003,c1=8") == 12 and trial_index("") == 0


def test_stop_reason_tells_asha_stops_from_finished_trials() -> None:
    assert stop_reason(2, 6) == "KILLED" and stop_reason(6, 6) == "FINISHED"


def test_progress_line_counts_best_and_eta() -> None:
    line = progress_line(
        {"finished": 1, "stopped": 2, "errored": 0, "running": 2},
        10,
        (0.91, "ab12 epoch 3"),
        "val_auroc",
        90.0,
    )
    assert line.startswith("[1m30s] 3/10 done (1 finished, 2 stopped by ASHA, 0 errored), 2 running")
    assert "best val_auroc=0.9100 (ab12 epoch 3)" in line and line.endswith("ETA 3m30s")
    assert "ETA ?" in progress_line({}, 10, None, "val_auroc", 5.0)
