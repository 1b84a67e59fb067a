"""A Tune callback (driver side) that mirrors every trial into an MLflow child run of the search's run.

Child runs are found again by their trial-id tag before one is created, so a resumed search (or a
``sync-mlflow`` backfill) never logs a trial twice; metric steps already in MLflow are not re-logged.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from ray.tune import Callback

from fracture_tune.search.tracking import PARENT_TAG, SEARCH_NAME_TAG, TRIAL_ID_TAG, ParentRun

logger = logging.getLogger(__name__)

SKIPPED_RESULT_KEYS = frozenset(
    {
        "epoch",
        "training_iteration",
        "done",
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "time_since_restore",
        "iterations_since_restore",
        "pid",
    }
)


def trial_index(experiment_tag: str) -> int:
    """Tune numbers trials in creation order at the start of their experiment tag (``7_lr=...``)."""
    head = str(experiment_tag).split("_", 1)[0]
    return int(head) if head.isdigit() else 0


def run_name_for(config: dict[str, Any], index: int) -> str:
    """``tunable_cnn lr=3.2e-03 bs=32 #0007``: readable in the MLflow run list, unique per trial."""
    parts = [str(config.get("model", "model"))]
    if "lr" in config:
        parts.append(f"lr={float(config['lr']):.1e}")
    if "batch_size" in config:
        parts.append(f"bs={config['batch_size']}")
    parts.append(f"#{index:04d}")
    return " ".join(parts)


def stop_reason(epochs_run: int, planned_epochs: int) -> str:
    """FINISHED when a trial ran its planned epochs, else KILLED (ASHA stopped it)."""
    return "FINISHED" if epochs_run >= planned_epochs else "KILLED"


class TrialRunLogger:
    """Child runs keyed by trial id; all MLflow calls under the parent run's lock."""

    def __init__(self, parent: ParentRun, search_name: str, metric: str, planned_epochs: int) -> None:
        self.parent = parent
        self.search_name = search_name
        self.metric = metric
        self.planned_epochs = planned_epochs
        self.run_ids: dict[str, str] = {}
        self.logged_steps: dict[str, int] = {}

    @property
    def client(self) -> Any:
        return self.parent.client

    # Tune pickles its callbacks into the experiment folder (tuner.pkl); on resume the unpickled logger
    # reconnects to the same parent run. Caches are dropped: child runs are looked up again by tag.
    def __getstate__(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.parent.tracking_uri,
            "experiment_id": self.parent.experiment_id,
            "parent_run_id": self.parent.run_id,
            "search_name": self.search_name,
            "metric": self.metric,
            "planned_epochs": self.planned_epochs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        from fracture_tune.search.tracking import make_client

        parent = ParentRun(
            make_client(state["tracking_uri"]),
            state["experiment_id"],
            state["parent_run_id"],
            state["tracking_uri"],
        )
        self.__init__(parent, state["search_name"], state["metric"], state["planned_epochs"])  # type: ignore[misc]

    def run_for(self, trial_id: str, config: dict[str, Any], index: int = 0) -> str:
        if trial_id in self.run_ids:
            return self.run_ids[trial_id]
        with self.parent.lock:
            found = self.client.search_runs(
                [self.parent.experiment_id],
                filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial_id}' "
                f"and tags.`{PARENT_TAG}` = '{self.parent.run_id}'",
                max_results=1,
            )
            if found:
                run_id = found[0].info.run_id
                history = self.client.get_metric_history(run_id, self.metric)
                self.logged_steps[trial_id] = max((m.step for m in history), default=0)
                if found[0].info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
            else:
                run_id = self._create(trial_id, config, index)
                self.logged_steps[trial_id] = 0
        self.run_ids[trial_id] = run_id
        return run_id

    def _create(self, trial_id: str, config: dict[str, Any], index: int) -> str:
        from mlflow.entities import Param

        tags = {
            PARENT_TAG: self.parent.run_id,
            TRIAL_ID_TAG: trial_id,
            SEARCH_NAME_TAG: self.search_name,
            "trial_index": str(index),
        }
        run = self.client.create_run(
            self.parent.experiment_id, run_name=run_name_for(config, index), tags=tags
        )
        params = [Param(key, str(value)[:500]) for key, value in sorted(config.items())]
        if params:
            self.client.log_batch(run.info.run_id, params=params)
        return str(run.info.run_id)

    def log_result(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        run_id = self.run_for(trial_id, config)
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        if epoch <= self.logged_steps.get(trial_id, 0):
            return  # replayed after a resume: this epoch is already in MLflow
        timestamp = int(float(result.get("timestamp", 0)) * 1000)
        metrics = [
            Metric(key, float(value), timestamp, epoch)
            for key, value in result.items()
            if key not in SKIPPED_RESULT_KEYS
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ]
        with self.parent.lock:
            self.client.log_batch(run_id, metrics=metrics)
            if epoch == 1 or trial_id not in self.logged_steps:
                self.client.set_tag(run_id, "node_id", str(result.get("node_id", "")))
                self.client.set_tag(run_id, "node_ip", str(result.get("node_ip", "")))
        self.logged_steps[trial_id] = epoch

    def finish(
        self,
        trial_id: str,
        config: dict[str, Any],
        epochs_run: int,
        error: str | None = None,
        error_detail: str = "",
    ) -> str:
        run_id = self.run_for(trial_id, config)
        with self.parent.lock:
            self.client.set_tag(run_id, "epochs_completed", str(epochs_run))
            if error is not None:
                self.client.set_tag(run_id, "error", error[:4000])
                if error_detail:
                    self.client.log_text(run_id, error_detail, "error.txt")
                self.client.set_terminated(run_id, status="FAILED")
                return "FAILED"
            status = stop_reason(epochs_run, self.planned_epochs)
            if status == "KILLED":
                self.client.set_tag(run_id, "stopped_by", "asha")
                self.client.set_tag(run_id, "stopped_at_epoch", str(epochs_run))
            self.client.set_terminated(run_id, status=status)
        return status


# While the tracking server is unreachable, queued updates are retried at most this often, so an outage
# costs the search one bounded failed call (see ``bound_http_retries``) per interval, not one per result.
RETRY_INTERVAL_S = 15.0


def is_transient(error: BaseException) -> bool:
    """Server down, timed out or failing (5xx): worth retrying. A 4xx or a bug will fail again: drop it."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.get_http_status_code() >= 500
    return isinstance(error, OSError | TimeoutError)


class MlflowTrialCallback(Callback):
    """Tune → ``TrialRunLogger``. Logging failures are reported, never allowed to kill the search.

    Updates go through a queue, in order: when the server is unreachable they stay queued and are replayed
    once it answers again (``TrialRunLogger`` skips epochs already logged, so replays never duplicate).
    Whatever is still queued when the search ends is reported, with the ``sync-mlflow`` command that
    backfills it from Tune's results on disk.
    """

    def __init__(self, trial_logger: TrialRunLogger, retry_interval_s: float = RETRY_INTERVAL_S) -> None:
        self.trial_logger = trial_logger
        self.retry_interval_s = retry_interval_s
        self.pending: list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]] = []
        self.next_attempt = 0.0
        self.failed_attempts = 0

    # Tune pickles callbacks with the Tuner: never carry queued updates into a resumed search.
    def __getstate__(self) -> dict[str, Any]:
        return {"trial_logger": self.trial_logger, "retry_interval_s": self.retry_interval_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["trial_logger"], state["retry_interval_s"])  # type: ignore[misc]

    def _safely(self, action: str, function: Any, *args: Any, **kwargs: Any) -> None:
        self.pending.append((action, function, args, kwargs))
        self.drain()

    def drain(self, force: bool = False) -> None:
        """Send queued updates in order; stop at the first transient failure and retry later."""
        if not force and time.monotonic() < self.next_attempt:
            return
        was_failing = self.failed_attempts > 0
        while self.pending:
            action, function, args, kwargs = self.pending[0]
            try:
                function(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 - tracking must not take the search down
                if is_transient(error):
                    self.failed_attempts += 1
                    self.next_attempt = time.monotonic() + self.retry_interval_s
                    logger.warning(
                        "MLflow %s failed (%s); %d update(s) queued, retrying in %.0f s",
                        action, str(error).splitlines()[0][:200], len(self.pending), self.retry_interval_s,
                    )  # fmt: skip
                    return
                logger.warning("MLflow %s failed:\n%s", action, traceback.format_exc())
            self.pending.pop(0)
        if was_failing:
            logger.warning("MLflow reachable again: queued updates logged (%d failed attempts)",
                           self.failed_attempts)  # fmt: skip
            self.failed_attempts = 0

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.drain(force=True)
        if self.pending:
            name = self.trial_logger.search_name
            logger.warning(
                "MLflow is missing %d update(s) of this search (server unreachable); Tune's results on "
                "disk are complete: backfill with `fracture-tune search sync-mlflow %s`",
                len(self.pending), name,
            )  # fmt: skip

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._safely(
            "create run",
            self.trial_logger.run_for,
            trial.trial_id,
            dict(trial.config),
            trial_index(trial.experiment_tag),
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._safely("log metrics", self.trial_logger.log_result, trial.trial_id, dict(trial.config), result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epochs = int((trial.last_result or {}).get("epoch", 0))
        self._safely("finish run", self.trial_logger.finish, trial.trial_id, dict(trial.config), epochs)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epochs = int((trial.last_result or {}).get("epoch", 0))
        message, detail = trial_error_text(trial)
        self._safely(
            "finish failed run",
            self.trial_logger.finish,
            trial.trial_id,
            dict(trial.config),
            epochs,
            error=message,
            error_detail=detail,
        )


def trial_error_text(trial: Any) -> tuple[str, str]:
    """(last line of the error, full traceback) from the trial's error file."""
    detail = ""
    try:
        path = trial.error_file
        if path:
            with open(path, encoding="utf-8", errors="replace") as stream:
                detail = stream.read()
    except OSError:
        pass
    lines = [line for line in detail.strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "trial failed"), detail
