"""A library call leaves the process environment and MLflow's tracking URI as it found them."""

from __future__ import annotations

import os

import pytest

from fracture_tune.classifier.call_environment import call_environment


def test_the_call_sets_its_defaults_and_restores_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_RUN_ID", "leaked")
    monkeypatch.setenv("KEPT", "user")
    monkeypatch.delenv("ADDED", raising=False)
    mlflow.set_tracking_uri("sqlite:////tmp/before.db")
    with call_environment({"ADDED": "call", "KEPT": "call"}):
        assert "MLFLOW_RUN_ID" not in os.environ  # a leaked run id is never the active run (mlflow#15713)
        assert os.environ["ADDED"] == "call" and os.environ["KEPT"] == "user"  # the user's value wins
        assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
        os.environ["SET_INSIDE"] = "x"
        mlflow.set_tracking_uri("sqlite:////tmp/inside.db")
    assert os.environ["MLFLOW_RUN_ID"] == "leaked" and os.environ["KEPT"] == "user"
    assert "ADDED" not in os.environ and "SET_INSIDE" not in os.environ
    assert mlflow.get_tracking_uri() == "sqlite:////tmp/before.db"


def test_the_environment_is_restored_when_the_call_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ADDED", raising=False)
    with pytest.raises(RuntimeError), call_environment({"ADDED": "call"}):
        raise RuntimeError("the call failed")
    assert "ADDED" not in os.environ
