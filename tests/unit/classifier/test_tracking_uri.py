"""Where MLflow lives: one rule for every command, relative paths made absolute."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.classifier.tracking_uri import resolve_tracking_uri
from fracture_tune.search.tracking import artifact_location_for


def test_default_tracking_uri_is_an_absolute_sqlite_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert artifact_location_for(resolve_tracking_uri()) == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_one_precedence_for_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """--tracking-uri > the store a search recorded (where its parent run lives) > $MLFLOW_TRACKING_URI >
    the YAML's > sqlite; a recorded URI that was redacted cannot be used and is skipped."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert resolve_tracking_uri("http://cli:5000", "http://rec:5000", "http://cfg:5000") == "http://cli:5000"
    assert resolve_tracking_uri(None, "http://rec:5000", "http://cfg:5000") == "http://rec:5000"
    assert resolve_tracking_uri(None, "http://***@rec:5000", "http://cfg:5000") == "http://env:5000"
    assert resolve_tracking_uri(None, None, "http://cfg:5000") == "http://env:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert resolve_tracking_uri(configured="http://cfg:5000") == "http://cfg:5000"
    # A saved config holds its URI redacted: never used as if it were a store.
    assert resolve_tracking_uri(configured="http://***@cfg:5000").startswith("sqlite:///")
    assert artifact_location_for("http://cfg:5000") is None


def test_a_plain_folder_is_mlflows_file_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("mlruns") == (tmp_path.resolve() / "mlruns").as_uri()
    assert resolve_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"
