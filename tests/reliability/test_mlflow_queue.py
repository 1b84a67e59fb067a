"""The search's MLflow callback while the server is unreachable: queue in order, replay, report the gap.

Fast: a real ``TrialRunLogger`` on a local sqlite store whose client is made to fail like an HTTP client
whose server is down (``MlflowException`` with status 503 / ``ConnectionError``), written by the callback's
background writer as in a search (``wait_until_idle`` lets the writer catch up before each check).
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from mlflow.tracking import MlflowClient

from fracture_tune.search.callbacks import MlflowTrialCallback
from fracture_tune.search.records import mlflow_updates_missing
from fracture_tune.search.stops import StopLedger
from fracture_tune.search.tracking import ParentRun, TrialRunLogger, ensure_experiment, is_transient


class FlakyClient:
    """Forwards to a real client, except while ``down`` is set."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.down = False
        self.calls_while_down = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                self.calls_while_down += 1
                raise MlflowException(
                    "API request failed: Connection refused", error_code=TEMPORARILY_UNAVAILABLE
                )
            return method(*args, **kwargs)

        return call


def _trial(trial_id: str) -> Any:
    return SimpleNamespace(
        trial_id=trial_id,
        config={"model": "tiny_cnn", "lr": 0.01},
        experiment_tag="1_lr=0.01",
        last_result={"epoch": 3},
        error_file=None,
    )


@pytest.fixture()
def callback(tmp_path: Path) -> tuple[MlflowTrialCallback, FlakyClient, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = ensure_experiment(client, "queue", uri)
    parent_id = client.create_run(experiment_id, run_name="search").info.run_id
    flaky = FlakyClient(client)
    parent = ParentRun(flaky, experiment_id, parent_id, uri)
    ledger = StopLedger(tmp_path / "run")
    ledger.record("t1", "finished", 3)
    trial_logger = TrialRunLogger(parent, "q", "val_auroc", 3)
    return MlflowTrialCallback(trial_logger, ledger, retry_interval_s=3600.0, writer="thread"), flaky, uri


def _result(epoch: int) -> dict[str, float]:
    return {"epoch": epoch, "val_auroc": 0.5 + epoch / 10, "timestamp": 1_700_000_000 + epoch}


def test_updates_queue_while_down_and_replay_in_order(
    callback: tuple[MlflowTrialCallback, FlakyClient, str],
) -> None:
    mlflow_callback, flaky, uri = callback
    trial = _trial("t1")
    mlflow_callback.on_trial_start(0, [], trial)
    mlflow_callback.on_trial_result(0, [], trial, _result(1))
    mlflow_callback.wait_until_idle()
    flaky.down = True
    mlflow_callback.on_trial_result(0, [], trial, _result(2))
    mlflow_callback.on_trial_result(0, [], trial, _result(3))
    mlflow_callback.on_trial_complete(0, [], trial)
    mlflow_callback.wait_until_idle()
    assert mlflow_callback.pending == 3
    flaky.down = False
    mlflow_callback.on_experiment_end([])
    assert mlflow_callback.pending == 0
    client = MlflowClient(uri)
    run = client.search_runs(
        [mlflow_callback.trial_logger.parent.experiment_id], "tags.`fracture_tune.trial_id` = 't1'"
    )
    assert len(run) == 1 and run[0].info.status == "FINISHED"
    assert run[0].data.tags["stop_reason"] == "finished" and run[0].data.tags["epochs_completed"] == "3"
    assert [m.step for m in client.get_metric_history(run[0].info.run_id, "val_auroc")] == [1, 2, 3]


def test_one_failed_call_per_retry_interval_not_per_result(
    callback: tuple[MlflowTrialCallback, FlakyClient, str],
) -> None:
    mlflow_callback, flaky, _ = callback
    trial = _trial("t2")
    flaky.down = True
    mlflow_callback.on_trial_start(0, [], trial)
    mlflow_callback.wait_until_idle()
    for epoch in (1, 2, 3):
        mlflow_callback.on_trial_result(0, [], trial, _result(epoch))
    mlflow_callback.wait_until_idle()
    assert flaky.calls_while_down == 1 and mlflow_callback.pending == 4


def test_gap_left_at_the_end_is_reported_with_the_backfill_command(
    callback: tuple[MlflowTrialCallback, FlakyClient, str], caplog: pytest.LogCaptureFixture
) -> None:
    mlflow_callback, flaky, _ = callback
    flaky.down = True
    mlflow_callback.on_trial_start(0, [], _trial("t3"))
    with caplog.at_level(logging.WARNING, logger="fracture_tune.search.callbacks"):
        mlflow_callback.on_experiment_end([])
    assert "fracture-tune search sync-mlflow q" in caplog.text and "missing 1 update" in caplog.text
    assert mlflow_updates_missing(mlflow_callback.ledger.path.parent) == 1  # the search's summary says so


def test_client_errors_are_dropped_not_retried_forever() -> None:
    assert is_transient(MlflowException("down", error_code=TEMPORARILY_UNAVAILABLE))
    assert is_transient(ConnectionError("refused"))
    assert not is_transient(MlflowException("bad value", error_code=INVALID_PARAMETER_VALUE))
    assert not is_transient(TypeError("a bug"))


def test_a_slow_server_never_holds_up_the_search_and_gets_batched_writes(
    callback: tuple[MlflowTrialCallback, FlakyClient, str],
) -> None:
    """Each MLflow call takes 0.3 s: Tune's event loop (the callback's caller) does not wait for them, and
    what queued up meanwhile goes out in a few batched calls, not one call per epoch."""
    import time

    mlflow_callback, flaky, uri = callback
    calls: list[str] = []
    real = flaky.client

    class SlowClient:
        def __getattr__(self, name: str) -> Any:
            method = getattr(real, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                calls.append(name)
                time.sleep(0.3)
                return method(*args, **kwargs)

            return call

    flaky.client = SlowClient()  # type: ignore[assignment]
    trial = _trial("t1")
    started = time.monotonic()
    mlflow_callback.on_trial_start(0, [], trial)
    for epoch in range(1, 21):
        mlflow_callback.on_trial_result(0, [], trial, _result(epoch))
    mlflow_callback.on_trial_complete(0, [], trial)
    assert time.monotonic() - started < 0.25, "the search waited for MLflow"
    mlflow_callback.on_experiment_end([])
    assert calls.count("log_batch") <= 3, calls
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [mlflow_callback.trial_logger.parent.experiment_id], "tags.`fracture_tune.trial_id` = 't1'"
    )
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_auroc")] == list(range(1, 21))
