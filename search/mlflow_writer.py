"""Who writes a search's trial runs to MLflow: a queue drained by a thread, in a process of its own.

MLflow's client is Python doing SQL or HTTP, ~40 ms of CPU a trial; in the driver's process it held the
interpreter lock that Tune's event loop needs, so every trial waited on MLflow a little. ``WriterProcess``
runs the ``UpdateQueue`` in a child process (started with ``spawn``, fed through a ``multiprocessing``
queue): the driver only puts small dicts on a pipe. ``UpdateQueue`` is the queue's logic, in any process:

- updates are kept per trial, in order, and written a trial's queued updates at a time in as few MLflow calls
  as there can be (``TrialRunLogger.write``: a run seen whole is ``create_run``, one ``log_batch`` and
  ``set_terminated``);
- while the server is unreachable they stay queued and are replayed once it answers (``TrialRunLogger`` skips
  epochs already logged, so replays never duplicate), with at most one failed call per ``retry_interval_s``;
- an update refused for a reason that will not go away (a 4xx, a bug) is dropped and counted;
- at the end what is still queued or was dropped goes to ``mlflow_backlog.jsonl`` in the run folder (the
  search's summary reads it) with the ``sync-mlflow`` command that backfills it from Tune's results on disk.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_tune.search.records import add_to_mlflow_backlog
from fracture_tune.search.stops import TrialStop
from fracture_tune.search.tracking import TrialRunLogger, error_summary, is_transient

logger = logging.getLogger(__name__)

# While the tracking server is unreachable, queued updates are retried at most this often, so an outage
# costs the search one bounded failed call (see ``bound_http_retries``) per interval, not one per result.
RETRY_INTERVAL_S = 15.0
# How long the end of a search waits for the writer process to flush (a server that stays down is bounded
# by the HTTP retries of one call per trial group).
CLOSE_TIMEOUT_S = 600.0


@dataclass
class Update:
    """One thing MLflow must learn about a trial: its start, an epoch's result, or its end."""

    kind: str  # start | result | finish
    config: dict[str, Any]
    index: int = 0
    result: dict[str, Any] | None = None
    stop: TrialStop | None = None
    error_detail: str = ""


class UpdateQueue:
    """The updates MLflow does not have yet, and their writer (a thread, or the caller with ``background``
    False). See the module's docstring."""

    def __init__(
        self,
        trial_logger: TrialRunLogger,
        backlog_file: Path,
        retry_interval_s: float = RETRY_INTERVAL_S,
        background: bool = True,
    ) -> None:
        self.trial_logger = trial_logger
        self.backlog_file = Path(backlog_file)
        self.retry_interval_s = retry_interval_s
        self.background = background
        self.queue: OrderedDict[str, list[Update]] = OrderedDict()  # trial id -> its updates, in order
        self.dropped: list[str] = []  # "<update> <trial>: <error>" of each update MLflow refused for good
        self.next_attempt = 0.0
        self.failed_attempts = 0
        self._lock = threading.Condition()
        self._writer: threading.Thread | None = None
        self._stopping = False

    @property
    def pending(self) -> int:
        """Updates queued and not yet in MLflow."""
        with self._lock:
            return sum(len(updates) for updates in self.queue.values())

    def put(self, trial_id: str, update: Update) -> None:
        with self._lock:
            self.queue.setdefault(trial_id, []).append(update)
            self._lock.notify()
        if not self.background:
            self.drain()
        elif self._writer is None:
            self._writer = threading.Thread(
                target=self._write_in_background, name="mlflow-writer", daemon=True
            )
            self._writer.start()

    def _write_in_background(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self.queue or time.monotonic() < self.next_attempt):
                    self._lock.wait(None if not self.queue else self.next_attempt - time.monotonic())
                if self._stopping:
                    return
            self.drain()

    def wait_until_idle(self, timeout_s: float = 30.0) -> None:
        """Block until the queue is empty or waiting out a failure (tests; the end of a search flushes)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self.queue or time.monotonic() < self.next_attempt:
                    return
            time.sleep(0.01)

    def _next_group(self) -> tuple[str, list[Update]] | None:
        """The first queued trial's updates up to and including its next end (a resumed trial may end
        twice)."""
        with self._lock:
            if not self.queue:
                return None
            trial_id, updates = self.queue.popitem(last=False)
            ends = [position for position, update in enumerate(updates) if update.kind == "finish"]
            cut = ends[0] + 1 if ends else len(updates)
            if cut < len(updates):
                self.queue[trial_id] = updates[cut:]
                self.queue.move_to_end(trial_id, last=False)
            return trial_id, updates[:cut]

    def _put_back(self, trial_id: str, updates: list[Update]) -> None:
        with self._lock:
            self.queue[trial_id] = updates + self.queue.get(trial_id, [])
            self.queue.move_to_end(trial_id, last=False)

    def drain(self, force: bool = False) -> None:
        """Send queued updates, trial by trial; stop at the first transient failure and retry later."""
        if not force and time.monotonic() < self.next_attempt:
            return
        was_failing = self.failed_attempts > 0
        while (group := self._next_group()) is not None:
            trial_id, updates = group
            try:
                self._write(trial_id, updates)
            except Exception as error:  # noqa: BLE001 - tracking must not take the search down
                reason = error_summary(error)
                if is_transient(error):
                    self._put_back(trial_id, updates)
                    self.failed_attempts += 1
                    self.next_attempt = time.monotonic() + self.retry_interval_s
                    logger.warning(
                        "MLflow update failed (%s); %d update(s) queued, retrying in %.0f s",
                        reason,
                        self.pending,
                        self.retry_interval_s,
                    )
                    return
                self.dropped.extend(f"{update.kind} {trial_id}: {reason}" for update in updates)
                logger.warning(
                    "MLflow refused an update of trial %s (%s); %d update(s) dropped so far, backfill with "
                    "`fracture-tune search sync-mlflow %s`",
                    trial_id,
                    reason,
                    len(self.dropped),
                    self.trial_logger.search_name,
                )
        if was_failing:
            logger.warning(
                "MLflow reachable again: queued updates logged (%d failed attempts)", self.failed_attempts
            )
            self.failed_attempts = 0

    def _write(self, trial_id: str, updates: list[Update]) -> None:
        last = updates[-1]
        starts = [update.index for update in updates if update.kind == "start"]
        self.trial_logger.write(
            trial_id,
            last.config,
            starts[0] if starts else 0,
            results=[update.result for update in updates if update.kind == "result" and update.result],
            stop=last.stop if last.kind == "finish" else None,
            error_detail=last.error_detail,
        )

    def close(self) -> None:
        """Stop the writer, flush what MLflow takes, and report what it did not (``mlflow_backlog.jsonl``)."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        self._stopping = False
        self.drain(force=True)
        self._report_backlog()

    def _report_backlog(self) -> None:
        name = self.trial_logger.search_name
        queued = self.pending
        missing = queued + len(self.dropped)
        if not missing:
            self.backlog_file.unlink(missing_ok=True)
            return
        record = {
            "queued_unsent": queued,
            "dropped": len(self.dropped),
            "dropped_reasons": self.dropped[:50],
            "recover_with": f"fracture-tune search sync-mlflow {name}",
        }
        try:
            self.backlog_file.write_text(json.dumps(record) + "\n", encoding="utf-8")
        except OSError as error:
            logger.warning("cannot write %s: %s", self.backlog_file, error)
        logger.warning(
            "MLflow is missing %d update(s) of this search (%d still queued: server unreachable; %d "
            "dropped: refused); Tune's results on disk are complete: backfill with `fracture-tune search "
            "sync-mlflow %s`",
            missing,
            queued,
            len(self.dropped),
            name,
        )


class WriterProcess:
    """An ``UpdateQueue`` in a child process: ``put`` sends an update down a pipe, ``close`` waits for the
    child to flush and report. The child rebuilds the trial logger from its state (the tracking URI is
    resolved back to the live one in this process and passed in memory, never written to disk)."""

    def __init__(self, trial_logger: TrialRunLogger, backlog_file: Path, retry_interval_s: float) -> None:
        from fracture_tune.search.tracking import live_tracking_uri

        context = multiprocessing.get_context("spawn")
        self.updates: Any = context.Queue()
        self.backlog_file = Path(backlog_file)
        self.search_name = trial_logger.search_name
        settings = {
            **trial_logger.__getstate__(),
            "tracking_uri": live_tracking_uri(trial_logger.parent.tracking_uri),
            "fresh_search": trial_logger.fresh_search,
            "run_ids": dict(trial_logger.run_ids),
        }
        self.process = context.Process(
            target=_serve,
            args=(self.updates, settings, str(backlog_file), retry_interval_s),
            name="fracture-tune-mlflow-writer",
            daemon=True,
        )
        self.process.start()

    @property
    def pending(self) -> int:
        return 0  # not known here: the child reports what it could not send when it closes

    def put(self, trial_id: str, update: Update) -> None:
        self.updates.put((trial_id, update))

    def wait_until_idle(self, timeout_s: float = 30.0) -> None:
        """Nothing to wait for here: the child writes as updates arrive."""

    def close(self) -> None:
        self.updates.put(None)
        self.updates.close()
        self.process.join(CLOSE_TIMEOUT_S)
        if self.process.is_alive() or self.process.exitcode != 0:
            code = "still running" if self.process.is_alive() else f"exit code {self.process.exitcode}"
            if self.process.is_alive():
                self.process.kill()
            add_to_mlflow_backlog(
                self.backlog_file.parent, self.search_name, f"MLflow writer process: {code}"
            )
            logger.warning(
                "the MLflow writer process ended badly (%s); Tune's results on disk are complete: backfill "
                "with `fracture-tune search sync-mlflow %s`",
                code,
                self.search_name,
            )


def _serve(updates: Any, settings: dict[str, Any], backlog_file: str, retry_interval_s: float) -> None:
    """The writer process: rebuild the trial logger, write what arrives, flush and report at the end."""
    from fracture_tune.classifier.call_environment import call_environment
    from fracture_tune.search.tracking import BOUNDED_HTTP_RETRIES, ParentRun, make_client

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with call_environment(BOUNDED_HTTP_RETRIES):
        uri = settings["tracking_uri"]
        parent = ParentRun(make_client(uri), settings["experiment_id"], settings["parent_run_id"], uri)
        trial_logger = TrialRunLogger(
            parent, settings["search_name"], settings["metric"], settings["planned_epochs"]
        )
        trial_logger.fresh_search = settings["fresh_search"]
        trial_logger.run_ids.update(settings["run_ids"])
        queue = UpdateQueue(trial_logger, Path(backlog_file), retry_interval_s)
        while (item := updates.get()) is not None:
            queue.put(*item)
        queue.close()
