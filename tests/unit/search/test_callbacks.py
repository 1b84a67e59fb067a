"""The progress line a search prints, and where it goes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from fracture_tune.search import callbacks
from fracture_tune.search.callbacks import ProgressCallback, progress_line
from fracture_tune.search.progress_output import set_progress_output
from fracture_tune.search.stops import StopLedger
from fracture_tune.trainables.score import ScoreRule

RULE = ScoreRule("val_auroc", "max", min_epochs=2)


def test_progress_line_counts_best_and_eta() -> None:
    line = progress_line(
        {"finished": 1, "stopped_by_asha": 2, "error": 0, "running": 2},
        10,
        (0.91, "ab12 epoch 3"),
        "val_auroc",
        90.0,
    )
    assert line.startswith("[1m30s] 3/10 done (1 finished, 2 stopped by ASHA, 0 errored), 2 running")
    assert "best val_auroc=0.9100 (ab12 epoch 3)" in line and line.endswith("ETA 3m30s")
    assert "ETA ?" in progress_line({}, 10, None, "val_auroc", 5.0)


def test_progress_line_names_budget_cut_offs_and_interruptions_apart_from_asha() -> None:
    counts = {"finished": 1, "stopped_by_asha": 2, "error": 1, "time_budget": 3, "interrupted": 1}
    line = progress_line(counts, 10, None, "val_auroc", 60.0)
    assert "8/10 done (1 finished, 2 stopped by ASHA, 1 errored, 3 cut off by the time budget, " in line
    assert "1 interrupted), 0 running" in line


def test_progress_counts_come_from_the_recorded_reasons_not_the_epoch_count(tmp_path: Path) -> None:
    """Two trials that each ran 2 of 4 epochs: one stopped by ASHA, one cut off by the budget."""
    ledger = StopLedger(tmp_path)
    ledger.record("a", "stopped_by_asha", 2)
    ledger.record("b", "time_budget", 2)
    callback = ProgressCallback("s2", RULE, 4, ledger)
    trials = [
        SimpleNamespace(trial_id="a", status="TERMINATED", last_result={"epoch": 2}),
        SimpleNamespace(trial_id="b", status="TERMINATED", last_result={"epoch": 2}),
        SimpleNamespace(trial_id="c", status="RUNNING", last_result={"epoch": 1}),
    ]
    assert callback._counts(trials) == {
        "finished": 0,
        "stopped_by_asha": 1,
        "error": 0,
        "time_budget": 1,
        "interrupted": 0,
        "running": 1,
    }


def test_progress_goes_where_the_call_asked_and_nowhere_otherwise(tmp_path: Path) -> None:
    """progress=False prints nothing; a resumed (unpickled) callback finds its output by the search's name."""
    import pickle

    ledger = StopLedger(tmp_path)
    ledger.record("t1", "finished", 2)
    callback = ProgressCallback("s1", RULE, planned_trials=4, ledger=ledger)
    trial = SimpleNamespace(trial_id="t1", status="TERMINATED", last_result={"epoch": 2})
    lines: list[str] = []
    callback.on_trial_complete(0, [trial], trial)
    assert lines == []
    set_progress_output("s1", lines.append)
    try:
        callback.on_trial_complete(0, [trial], trial)
        pickle.loads(pickle.dumps(callback)).on_trial_complete(0, [trial], trial)
    finally:
        set_progress_output("s1", None)
    assert len(lines) == 2 and "1/4 done (1 finished" in lines[0]
    callback.on_trial_complete(0, [trial], trial)
    assert len(lines) == 2


def test_the_best_shown_is_the_best_score_among_epochs_that_count(tmp_path: Path) -> None:
    """A spike before min_epochs is not shown as the search's best; the score's own epoch is named."""
    callback = ProgressCallback("s3", RULE, 4, StopLedger(tmp_path))
    spike, steady = SimpleNamespace(trial_id="spike"), SimpleNamespace(trial_id="steady")
    callback.on_trial_result(0, [], spike, {"epoch": 1, "score": 0.99, "score_epoch": 1})
    assert callback.best is None
    callback.on_trial_result(0, [], steady, {"epoch": 2, "score": 0.8, "score_epoch": 2})
    callback.on_trial_result(0, [], steady, {"epoch": 3, "score": 0.8, "score_epoch": 2})
    callback.on_trial_result(0, [], spike, {"epoch": 2, "score": 0.6, "score_epoch": 2})
    assert callback.best == (0.8, "steady epoch 2")


def test_the_eta_never_runs_past_the_time_budgets_end() -> None:
    """A 240-s budget: 1 of 10 trials done at 140 s extrapolates to 21 minutes; the search stops in 100 s."""
    counts = {"finished": 1, "running": 2}
    assert progress_line(counts, 10, None, "val_auroc", 140.0).endswith("ETA 21m00s")
    assert progress_line(counts, 10, None, "val_auroc", 140.0, 240.0).endswith("ETA 1m40s (time budget)")
    assert progress_line({"running": 2}, 10, None, "val_auroc", 5.0, 240.0).endswith(
        "ETA 3m55s (time budget)"
    )
    assert progress_line({"finished": 9}, 10, None, "val_auroc", 90.0, 240.0).endswith("ETA 0m10s")
    assert progress_line({"running": 1}, 10, None, "val_auroc", 300.0, 240.0).endswith(
        "ETA 0m00s (time budget)"
    )


def test_a_searchs_progress_line_counts_down_its_time_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search's own callbacks carry budget.time_budget_s; the first trial ends 140 s in (a fake clock)."""
    from fracture_tune.search.config import load_config
    from fracture_tune.search.run import SearchOptions, search_callbacks

    clock = [1000.0]
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    config = load_config("quickstart", {"budget.time_budget_s": 240, "budget.num_trials": 10})
    parent = SimpleNamespace(run_id="p", experiment_id="0", client=None, tracking_uri="")
    options = SearchOptions("s4", storage=tmp_path)
    progress = next(c for c in search_callbacks(config, options, parent) if isinstance(c, ProgressCallback))  # type: ignore[arg-type]
    ledger = StopLedger(options.run_dir)
    ledger.record("t1", "finished", 10)
    trial = SimpleNamespace(trial_id="t1", status="TERMINATED", last_result={"epoch": 10})
    running = [SimpleNamespace(trial_id=f"t{i}", status="RUNNING", last_result={}) for i in (2, 3)]
    lines: list[str] = []
    set_progress_output("s4", lines.append)
    try:
        clock[0] += 140.0
        progress.on_trial_complete(0, [trial, *running], trial)
    finally:
        set_progress_output("s4", None)
    assert lines and lines[0].startswith("[2m20s] 1/10 done") and lines[0].endswith("ETA 1m40s (time budget)")
