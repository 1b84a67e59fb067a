"""An ended trial's Tune summaries shrink to the score, in memory and in the experiment state, and the trial
can still report again (a resumed trial)."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial

from fracture_tune.search.trial_metadata import TrimEndedTrialMetadata

RESULT_KEYS = ["score", "val_auroc", "val_loss", "train_loss", "val_accuracy", "epoch", "time_this_iter_s"]


def _trial_with_results(epochs: int) -> Trial:
    trial = Trial("__fake", stub=True)
    for epoch in range(1, epochs + 1):
        result = {key: 0.1 * epoch for key in RESULT_KEYS}
        trial.update_last_result({**result, "training_iteration": epoch})
    return trial


def test_an_ended_trial_keeps_the_summaries_of_its_score_only() -> None:
    trial = _trial_with_results(epochs=12)
    before = len(trial.run_metadata.get_json_state())  # cached, as Tune's experiment state does

    TrimEndedTrialMetadata(keep="score").on_trial_complete(0, [], trial)

    assert list(trial.metric_analysis) == ["score"]
    assert list(trial.metric_n_steps) == ["score"]
    assert trial.metric_analysis["score"]["max"] == pytest.approx(1.2)
    assert trial.last_result["val_auroc"] > 1  # the last result itself stays whole
    after = len(trial.run_metadata.get_json_state())
    assert after < before / 3, (before, after)  # the snapshot Tune writes is rebuilt from the trimmed state


def test_an_errored_trial_is_trimmed_and_can_report_again() -> None:
    trial = _trial_with_results(epochs=3)
    TrimEndedTrialMetadata(keep="score").on_trial_error(0, [], trial)
    assert list(trial.metric_analysis) == ["score"]

    trial.update_last_result({"score": 0.9, "val_auroc": 0.8, "training_iteration": 4})  # resumed

    assert trial.metric_analysis["score"]["max"] == 0.9
    assert trial.metric_analysis["val_auroc"]["last"] == 0.8
