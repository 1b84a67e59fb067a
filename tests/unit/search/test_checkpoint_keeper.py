"""Which checkpoints stay: a running trial's latest and score epoch's; an ended one's while among the best."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fracture_tune.search.checkpoint_keeper import CheckpointKeeper
from fracture_tune.trainables.score import ScoreRule

RULE = ScoreRule("val_auroc", "max", min_epochs=2)


def _trial(tmp_path: Path, trial_id: str, index: int) -> Any:
    folder = tmp_path / f"trial_{trial_id}"
    folder.mkdir()
    return SimpleNamespace(
        trial_id=trial_id, path=str(folder), experiment_tag=f"{index}_lr=0.1", status="RUNNING"
    )


def _epoch(keeper: CheckpointKeeper, trial: Any, history: list[float]) -> None:
    """The trial reports epoch len(history) with its checkpoint folder, as the adapter and Tune do."""
    epoch = len(history)
    name = f"checkpoint_{epoch - 1:06d}"
    (Path(trial.path) / name).mkdir()
    score, score_epoch = RULE.score(history)
    keeper.on_trial_result(
        0,
        [],
        trial,
        {"epoch": epoch, "checkpoint_dir_name": name, "score": score, "score_epoch": score_epoch},
    )


def _kept(trial: Any) -> list[int]:
    return sorted(
        int(folder.name.removeprefix("checkpoint_")) + 1 for folder in Path(trial.path).glob("checkpoint_*")
    )


def test_a_running_trial_keeps_its_latest_and_its_score_epochs_checkpoint(tmp_path: Path) -> None:
    keeper, trial = CheckpointKeeper(RULE, keep_best_trials=5), _trial(tmp_path, "a", 1)
    history: list[float] = []
    for value in (0.6, 0.8, 0.7, 0.75):
        history.append(value)
        _epoch(keeper, trial, history)
    assert _kept(trial) == [2, 4]  # the score's epoch (2) and the latest (4), for a restart
    keeper.on_trial_complete(0, [], trial)
    assert _kept(trial) == [2]  # ended: nothing will resume it


def test_ended_trials_keep_a_checkpoint_only_while_among_the_best(tmp_path: Path) -> None:
    keeper = CheckpointKeeper(RULE, keep_best_trials=2)
    trials = {}
    curves = [("low", [0.5, 0.7]), ("high", [0.5, 0.9]), ("mid", [0.5, 0.8]), ("short", [0.99])]
    for index, (trial_id, values) in enumerate(curves):
        trial = trials[trial_id] = _trial(tmp_path, trial_id, index)
        for epoch in range(1, len(values) + 1):
            _epoch(keeper, trial, values[:epoch])
        keeper.on_trial_complete(0, [], trial)
    assert {trial_id: _kept(trial) for trial_id, trial in trials.items()} == {
        "low": [],
        "high": [2],
        "mid": [2],
        "short": [],  # "short" ended before min_epochs: it cannot win
    }


def test_an_errored_trial_keeps_what_a_resume_needs_and_budget_cut_trials_are_pruned_at_the_end(
    tmp_path: Path,
) -> None:
    keeper = CheckpointKeeper(RULE, keep_best_trials=1)
    broken, cut = _trial(tmp_path, "broken", 1), _trial(tmp_path, "cut", 2)
    for trial, values in ((broken, [0.6, 0.9, 0.7]), (cut, [0.5, 0.6, 0.55])):
        for epoch in range(1, len(values) + 1):
            _epoch(keeper, trial, values[:epoch])
    keeper.on_trial_error(0, [], broken)
    cut.status = "TERMINATED"  # the time budget ran out: Tune tells no callback but on_experiment_end
    keeper.on_experiment_end([broken, cut])
    assert _kept(broken) == [2, 3] and _kept(cut) == [2]
