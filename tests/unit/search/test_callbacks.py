"""The progress line a search prints, and where it goes."""

from __future__ import annotations

from types import SimpleNamespace

from fracture_tune.search.callbacks import ProgressCallback, progress_line
from fracture_tune.search.environment import set_progress_output


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


def test_progress_goes_where_the_call_asked_and_nowhere_otherwise() -> None:
    """progress=False prints nothing; a resumed (unpickled) callback finds its output by the search's name."""
    import pickle

    callback = ProgressCallback("s1", "val_auroc", "max", planned_trials=4, planned_epochs=2)
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
