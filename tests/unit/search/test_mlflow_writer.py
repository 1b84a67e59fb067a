"""The queue between a search and MLflow: what reaches MLflow, in what groups, and what an outage costs.

A user would notice trial runs missing epochs or duplicated after the tracking server was down for a while,
a search slowed by one MLflow call per result, or updates lost without ``mlflow_backlog.jsonl`` telling them
to run ``sync-mlflow``. Checked on ``UpdateQueue`` in this process with a stand-in trial logger;
``WriterProcess`` (the same queue in a spawned child) is left to the search's integration tests, as a spawned
interpreter re-importing the package takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fracture_tune.search.mlflow_writer import Update, UpdateQueue


class _TrialLogger:
    """Records each ``write``; raises the queued errors first (one per call)."""

    search_name = "quick"

    def __init__(self) -> None:
        self.writes: list[dict[str, Any]] = []
        self.errors: list[Exception] = []

    def write(
        self, trial_id: str, config: dict, index: int, results: list, stop: Any, error_detail: str
    ) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.writes.append({"trial": trial_id, "index": index, "epochs": [r["epoch"] for r in results]})


def _updates(trial_index: int, epochs: int, finish: bool = True) -> list[Update]:
    config = {"lr": 0.01}
    updates = [Update("start", config, index=trial_index)]
    updates += [Update("result", config, result={"epoch": epoch}) for epoch in range(1, epochs + 1)]
    return updates + ([Update("finish", config)] if finish else [])


def test_an_outage_keeps_updates_queued_and_replays_them_in_order_once(tmp_path: Path) -> None:
    trial_logger = _TrialLogger()
    queue = UpdateQueue(trial_logger, tmp_path / "backlog.jsonl", retry_interval_s=3600, background=False)
    trial_logger.errors.append(ConnectionError("server down"))

    for update in _updates(0, 2):
        queue.put("t0", update)
    for update in _updates(1, 1):
        queue.put("t1", update)

    assert trial_logger.writes == []  # one failed call, then waiting out the retry interval
    assert queue.pending == 7 and queue.failed_attempts == 1
    queue.close()  # the end of the search flushes whatever the server now takes
    assert trial_logger.writes == [
        {"trial": "t0", "index": 0, "epochs": [1, 2]},
        {"trial": "t1", "index": 1, "epochs": [1]},
    ]
    assert queue.pending == 0
    assert not (tmp_path / "backlog.jsonl").exists()


def test_a_resumed_trial_that_ends_twice_is_written_as_two_groups(tmp_path: Path) -> None:
    trial_logger = _TrialLogger()
    queue = UpdateQueue(trial_logger, tmp_path / "backlog.jsonl", retry_interval_s=3600, background=False)
    trial_logger.errors.append(ConnectionError("server down"))
    for update in [*_updates(0, 1), *_updates(0, 3)[2:]]:  # ends, then resumes at epoch 2 and ends again
        queue.put("t0", update)

    queue.close()

    assert trial_logger.writes == [
        {"trial": "t0", "index": 0, "epochs": [1]},
        {"trial": "t0", "index": 0, "epochs": [2, 3]},
    ]


def test_refused_and_unsent_updates_are_reported_with_the_command_that_backfills_them(tmp_path: Path) -> None:
    trial_logger = _TrialLogger()
    backlog = tmp_path / "backlog.jsonl"
    queue = UpdateQueue(trial_logger, backlog, retry_interval_s=3600, background=False)
    trial_logger.errors.append(ConnectionError("down"))
    for update in _updates(0, 1):
        queue.put("t0", update)
    for update in _updates(1, 1, finish=False):
        queue.put("t1", update)
    # At the end, t0's updates are refused for good (dropped) and the server is gone again for t1's (queued).
    trial_logger.errors += [ValueError("bad param"), ConnectionError("still down")]

    queue.close()

    record = json.loads(backlog.read_text(encoding="utf-8"))
    assert record["dropped"] == 3 and record["queued_unsent"] == 2
    assert record["dropped_reasons"][0] == "start t0: bad param"
    assert record["recover_with"] == "fracture-tune search sync-mlflow quick"


def test_the_background_writer_sends_updates_without_the_caller_waiting(tmp_path: Path) -> None:
    trial_logger = _TrialLogger()
    queue = UpdateQueue(trial_logger, tmp_path / "backlog.jsonl")

    for update in _updates(0, 2):
        queue.put("t0", update)
    queue.wait_until_idle(timeout_s=10)
    queue.close()

    assert {write["trial"] for write in trial_logger.writes} == {"t0"}
    assert [epoch for write in trial_logger.writes for epoch in write["epochs"]] == [1, 2]
    assert queue.pending == 0
