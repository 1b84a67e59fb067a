"""All of the search's MLflow client code: one parent run per search, one child run per trial.

Only the search's driver talks to MLflow (workers need no tracking access). Everything goes through
``MlflowClient`` with explicit run ids (no fluent API, no autolog, nothing in the trials), behind one lock:
Tune calls callbacks from its event loop, but ``sync-mlflow`` and the final summary may call in from
elsewhere, and the client is not documented as thread-safe. The Tune callback that feeds ``TrialRunLogger``
(queueing updates while the server is down) is ``fracture_tune.search.callbacks.MlflowTrialCallback``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fracture_tune.data.redaction import redact_secrets
from fracture_tune.search.stops import ERROR, MLFLOW_STATUS, TrialStop, describe

logger = logging.getLogger(__name__)

TRIAL_ID_TAG = "fracture_tune.trial_id"
SEARCH_NAME_TAG = "fracture_tune.search"
PARENT_TAG = "mlflow.parentRunId"
STOP_REASON_TAG = "stop_reason"  # finished | stopped_by_asha | time_budget | interrupted | error
# Real tracking URIs (secrets included) of the stores this process talks to, by their redacted form: what is
# pickled with the Tuner (tuner.pkl) holds only the redacted form and is resolved back here on resume.
_LIVE_TRACKING_URIS: dict[str, str] = {}


def remember_tracking_uri(uri: str) -> None:
    """Let objects unpickled in this process (a resumed search's callbacks) find ``uri`` by its redacted
    form."""
    _LIVE_TRACKING_URIS[redact_secrets(uri)] = uri


def live_tracking_uri(uri: str) -> str:
    """The real URI behind a redacted one this process has opened (else ``uri`` itself)."""
    return _LIVE_TRACKING_URIS.get(uri, uri)


def artifact_location_for(tracking_uri: str) -> str | None:
    """``./mlartifacts`` beside a sqlite db; None (the server's default) for http(s) servers."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri.removeprefix("sqlite:///"))
        return (database.parent / "mlartifacts").as_uri()
    return None


# MLflow's HTTP defaults (7 retries, backoff factor 2, 120 s timeout) stall a call for minutes while a server
# is down — in Tune's event loop, that stalls every trial. The search's callback queues and replays updates
# instead, so a call may fail fast. Set for the duration of a search; the user's own settings win.
BOUNDED_HTTP_RETRIES = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


def make_client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` for ``tracking_uri``.

    Callers run inside ``fracture_tune.search.environment.command_environment``, which keeps a leaked
    ``MLFLOW_RUN_ID`` out (mlflow#15713) and MLflow's per-run "View run … at: URL" lines off stdout.
    """
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(client: Any, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)
    location = artifact_location_for(tracking_uri)
    return str(client.create_experiment(name, artifact_location=location))


class TrackingUnreachable(Exception):
    """The tracking store did not answer; the message is already redacted."""


class ParentRun:
    """The search's parent run: created once, reused on resume (its id lives in search_record.json)."""

    def __init__(self, client: Any, experiment_id: str, run_id: str, tracking_uri: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri
        remember_tracking_uri(tracking_uri)
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.lock = threading.Lock()

    @classmethod
    def open(
        cls, tracking_uri: str, experiment_name: str, search_name: str, existing_run_id: str = ""
    ) -> ParentRun:
        """The experiment (created if missing) and the search's run in it (reopened on resume).

        Raises ``TrackingUnreachable`` (message redacted) when the store does not answer.
        """
        from mlflow.exceptions import MlflowException

        try:
            client = make_client(tracking_uri)
            experiment_id = ensure_experiment(client, experiment_name, tracking_uri)
            return cls.start(tracking_uri, experiment_id, search_name, existing_run_id)
        except (MlflowException, OSError) as error:
            first_line = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
            raise TrackingUnreachable(
                f"cannot reach MLflow at {redact_secrets(tracking_uri)}: {redact_secrets(first_line)}"
            ) from error

    @classmethod
    def start(
        cls,
        tracking_uri: str,
        experiment_id: str,
        search_name: str,
        existing_run_id: str = "",
        reopen: bool = True,
    ) -> ParentRun:
        """The search's parent run: ``existing_run_id`` (set RUNNING again unless ``reopen`` is False: a
        check only reads), else a new one."""
        client = make_client(tracking_uri)
        if existing_run_id:
            run = client.get_run(existing_run_id)
            if reopen and run.info.status != "RUNNING":
                client.update_run(existing_run_id, status="RUNNING")
            return cls(client, experiment_id, existing_run_id, tracking_uri)
        run = client.create_run(experiment_id, run_name=search_name, tags={SEARCH_NAME_TAG: search_name})
        return cls(client, experiment_id, run.info.run_id, tracking_uri)

    def log_setup(self, params: dict[str, Any], tags: dict[str, str], artifacts: dict[str, str]) -> None:
        """Params (values ≤ 500 chars, as MLflow requires), tags and small text artifacts."""
        from mlflow.entities import Param, RunTag

        with self.lock:
            existing = self.client.get_run(self.run_id).data.params
            fresh = [Param(key, str(value)[:500]) for key, value in params.items() if key not in existing]
            for start in range(0, len(fresh), 100):
                self.client.log_batch(self.run_id, params=fresh[start : start + 100])
            self.client.log_batch(self.run_id, tags=[RunTag(key, str(value)) for key, value in tags.items()])
            for file_name, text in artifacts.items():
                self.client.log_text(self.run_id, text, file_name)

    def log_artifact(self, path: str) -> None:
        with self.lock:
            self.client.log_artifact(self.run_id, path)

    def log_report(self, folder: str, tags: dict[str, str]) -> None:
        """The search's report folder as the run's ``report/`` artifacts, and its summary tags."""
        from mlflow.entities import RunTag

        with self.lock:
            self.client.log_artifacts(self.run_id, folder, "report")
            self.client.log_batch(self.run_id, tags=[RunTag(key, value) for key, value in tags.items()])

    def finish(self, status: str, tags: dict[str, str], metrics: dict[str, float]) -> None:
        import time

        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        with self.lock:
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
                tags=[RunTag(key, str(value)[:5000]) for key, value in tags.items()],
            )
            self.client.set_terminated(self.run_id, status=status)


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
        "epoch_score",  # the checkpoint keeper's ordering (NaN before min_epochs); ``score`` is what counts
        "score_epoch",
    }
)


def run_name_for(config: dict[str, Any], index: int) -> str:
    """``tunable_cnn lr=3.2e-03 bs=32 #0007``: readable in the MLflow run list, unique per trial."""
    parts = [str(config.get("model", "model"))]
    if "lr" in config:
        parts.append(f"lr={float(config['lr']):.1e}")
    if "batch_size" in config:
        parts.append(f"bs={config['batch_size']}")
    parts.append(f"#{index:04d}")
    return " ".join(parts)


class TrialRunLogger:
    """Child runs keyed by trial id; all MLflow calls under the parent run's lock."""

    def __init__(self, parent: ParentRun, search_name: str, metric: str, planned_epochs: int) -> None:
        self.parent = parent
        self.search_name = search_name
        self.metric = metric
        self.planned_epochs = planned_epochs
        self.run_ids: dict[str, str] = {}
        self.logged_steps: dict[str, int] = {}
        self.unlogged_params: dict[str, dict[str, Any]] = {}  # run id -> params not yet sent
        # True for a search this driver started (not pickled): no trial has a run yet, so runs are created
        # without first looking one up by tag (one search_runs call a trial). A resumed search or a backfill
        # looks up first.
        self.fresh_search = False

    @property
    def client(self) -> Any:
        return self.parent.client

    # Tune pickles its callbacks into the experiment folder (tuner.pkl); on resume the unpickled logger
    # reconnects to the same parent run. Caches are dropped: child runs are looked up again by tag. The URI is
    # pickled redacted (no secret on disk); the resumed driver has opened the real one first (``_resume``).
    def __getstate__(self) -> dict[str, Any]:
        return {
            "tracking_uri": redact_secrets(self.parent.tracking_uri),
            "experiment_id": self.parent.experiment_id,
            "parent_run_id": self.parent.run_id,
            "search_name": self.search_name,
            "metric": self.metric,
            "planned_epochs": self.planned_epochs,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        uri = live_tracking_uri(state["tracking_uri"])
        parent = ParentRun(make_client(uri), state["experiment_id"], state["parent_run_id"], uri)
        self.__init__(parent, state["search_name"], state["metric"], state["planned_epochs"])  # type: ignore[misc]

    def run_for(self, trial_id: str, config: dict[str, Any], index: int = 0) -> str:
        """The trial's child run: created on its first update, found again (by tag) after a resume."""
        return self._run_for(trial_id, config, index, [])

    def _run_for(self, trial_id: str, config: dict[str, Any], index: int, extra_tags: list[Any]) -> str:
        if trial_id in self.run_ids:
            return self.run_ids[trial_id]
        with self.parent.lock:
            found = (
                self.client.search_runs(
                    [self.parent.experiment_id],
                    filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial_id}' "
                    f"and tags.`{PARENT_TAG}` = '{self.parent.run_id}'",
                    max_results=1,
                )
                if not self.fresh_search
                else []
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
        tags = {
            PARENT_TAG: self.parent.run_id,
            TRIAL_ID_TAG: trial_id,
            SEARCH_NAME_TAG: self.search_name,
            "trial_index": str(index),
        }
        run = self.client.create_run(
            self.parent.experiment_id, run_name=run_name_for(config, index), tags=tags
        )
        self.unlogged_params[str(run.info.run_id)] = config
        return str(run.info.run_id)

    def write(
        self,
        trial_id: str,
        config: dict[str, Any],
        index: int = 0,
        results: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
        stop: TrialStop | None = None,
        error_detail: str = "",
    ) -> str | None:
        """Everything queued for one trial in as few MLflow calls as there can be: the run (created once), its
        params, each new epoch's metrics and, when ``stop`` is given, why it ended and its final status —
        ``create_run``, one ``log_batch`` and ``set_terminated`` for a trial seen whole. Epochs already in
        MLflow (a replay after a resume or an outage) are skipped. Returns the run's final status, if
        ended."""
        from mlflow.entities import Param

        run_id = self.run_for(trial_id, config, index)
        metrics, tags = self._new_epochs(trial_id, results)
        params = self.unlogged_params.pop(run_id, None)
        param_list = [Param(key, str(value)[:500]) for key, value in sorted((params or {}).items())]
        status = None
        if stop is not None:
            status = MLFLOW_STATUS[stop.reason]
            tags += self._stop_tags(stop)
        with self.parent.lock:
            _log_in_batches(self.client, run_id, metrics, param_list, tags)
            if stop is not None:
                if error_detail:
                    self.client.log_text(run_id, error_detail, "error.txt")
                self.client.set_terminated(run_id, status=status)
        if results:
            self.logged_steps[trial_id] = max(self.logged_steps.get(trial_id, 0), *self._epochs(results))
        return status

    def _epochs(self, results: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> list[int]:
        return [int(result.get("epoch", result.get("training_iteration", 0))) for result in results]

    def _new_epochs(
        self, trial_id: str, results: list[dict[str, Any]] | tuple[dict[str, Any], ...]
    ) -> tuple[list[Any], list[Any]]:
        from mlflow.entities import Metric, RunTag

        metrics: list[Any] = []
        tags: list[Any] = []
        logged = self.logged_steps.get(trial_id, 0)
        for result, epoch in zip(results, self._epochs(results), strict=True):
            if epoch <= logged:
                continue  # replayed after a resume: this epoch is already in MLflow
            logged = epoch
            timestamp = int(float(result.get("timestamp", 0)) * 1000)
            metrics += [
                Metric(key, float(value), timestamp, epoch)
                for key, value in result.items()
                if key not in SKIPPED_RESULT_KEYS and _is_number(value)
            ]
            if not tags:
                tags = [
                    RunTag("node_id", str(result.get("node_id", ""))),
                    RunTag("node_ip", str(result.get("node_ip", ""))),
                ]
        return metrics, tags

    def _stop_tags(self, stop: TrialStop) -> list[Any]:
        from mlflow.entities import RunTag

        planned = self.planned_epochs
        detail = stop.detail if stop.reason == ERROR else describe(stop.reason, stop.epoch, planned)
        tags = [
            RunTag("epochs_completed", str(stop.epoch)),
            RunTag(STOP_REASON_TAG, stop.reason),
            RunTag("stop_detail", detail[:4000]),
        ]
        if stop.reason == ERROR:
            tags.append(RunTag("error", stop.detail[:4000]))
        return tags

    def log_result(self, trial_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
        self.write(trial_id, config, results=[result])

    def finish(self, trial_id: str, config: dict[str, Any], stop: TrialStop, error_detail: str = "") -> str:
        """End the trial's run with the status and tags of why it ended (``stops``); returns the status."""
        return str(self.write(trial_id, config, stop=stop, error_detail=error_detail))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# MLflow's limits for one log_batch call.
_BATCH_LIMITS = {"metrics": 1000, "params": 100, "tags": 100}


def _log_in_batches(client: Any, run_id: str, metrics: list[Any], params: list[Any], tags: list[Any]) -> None:
    while metrics or params or tags:
        client.log_batch(
            run_id,
            metrics=metrics[: _BATCH_LIMITS["metrics"]],
            params=params[: _BATCH_LIMITS["params"]],
            tags=tags[: _BATCH_LIMITS["tags"]],
        )
        metrics = metrics[_BATCH_LIMITS["metrics"] :]
        params = params[_BATCH_LIMITS["params"] :]
        tags = tags[_BATCH_LIMITS["tags"] :]


def error_summary(error: BaseException) -> str:
    """The error's first line (at most 200 characters), with any secret in a URI redacted."""
    text = str(error)
    return redact_secrets(text.splitlines()[0][:200] if text.strip() else type(error).__name__)


def is_transient(error: BaseException) -> bool:
    """Server down, timed out or failing (5xx): worth retrying. A 4xx or a bug will fail again: drop it."""
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        return error.get_http_status_code() >= 500
    return isinstance(error, OSError | TimeoutError)


def trial_runs(parent: ParentRun, page_size: int = 5000) -> Iterator[Any]:
    """Every trial run under the search's parent run, page by page (a search may have more than a page)."""
    token = None
    while True:
        with parent.lock:
            page = parent.client.search_runs(
                [parent.experiment_id],
                filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}'",
                max_results=page_size,
                page_token=token,
            )
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def attach_mlflow_ids(rows: list[dict[str, Any]], parent: ParentRun) -> None:
    """Fill each results row's ``mlflow_run_id`` from the trial runs under the search's parent run."""
    by_trial = {run.data.tags.get(TRIAL_ID_TAG): run.info.run_id for run in trial_runs(parent)}
    for row in rows:
        row["mlflow_run_id"] = by_trial.get(row["trial_id"], "")
