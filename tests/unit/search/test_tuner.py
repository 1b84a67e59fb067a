"""The Tune objects a search is assembled from, checked from a config without starting Ray.

A user would notice trials running past ASHA's ``max_t``, a ``budget.time_budget_s`` that never stops the
search, checkpoints ranked by the wrong direction, their own callbacks dropped, a searcher optimising the raw
metric instead of the trial's score, or ``--resume`` on a folder with nothing to resume failing with a
traceback instead of saying what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig, config_from_dict
from fracture_tune.search.stop_recording import BudgetStopper
from fracture_tune.search.tuner import build_run_config, build_searcher, fixed_trial_values, restore_tuner
from fracture_tune.trainables.score import EPOCH_SCORE_KEY, SCORE_KEY


def _config(**sections: object) -> ExperimentConfig:
    raw = {
        "dataset": {"image_size": 32},
        "training": {"model": "tunable_cnn", "epochs": 10, "input_size": 32, "device": "cpu"},
        "space": {"params": {"lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True}}},
        "scheduler": {"grace_period": 1, "max_t": 4, "reduction_factor": 2},
        "budget": {"num_trials": 6, "time_budget_s": 120},
        **sections,
    }
    return config_from_dict(raw)


def test_every_trial_gets_the_fixed_values_with_epochs_capped_at_ashas_max_t() -> None:
    values = fixed_trial_values(_config())

    assert values == {"model": "tunable_cnn", "epochs": 4, "input_size": 32, "device": "cpu"}


def test_the_run_config_stops_at_the_time_budget_and_keeps_the_callers_callbacks(tmp_path: Path) -> None:
    marker = object()

    run_config = build_run_config(_config(max_failures=3, metric="val_loss"), "quick", tmp_path, [marker])

    assert isinstance(run_config.stop, BudgetStopper)
    assert run_config.callbacks[0] is marker and len(run_config.callbacks) > 1  # plus Tune's result files
    assert run_config.checkpoint_config.checkpoint_score_attribute == EPOCH_SCORE_KEY
    assert run_config.checkpoint_config.checkpoint_score_order == "min"  # val_loss: lower is better
    assert run_config.failure_config.max_failures == 3
    assert (run_config.name, run_config.storage_path) == ("quick", str(tmp_path))
    unlimited = build_run_config(_config(budget={"num_trials": 6, "time_budget_s": None}), "q", tmp_path, [])
    assert unlimited.stop is None


def test_the_searcher_ranks_trials_by_their_score_and_warns_when_startup_trials_will_be_random(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _config(
        searcher={"seed": 0, "n_startup_trials": 2, "points_to_evaluate": [{"lr": 0.01}]},
        resources={"cpus_per_trial": 1, "max_concurrent_trials": 4},
    )

    with caplog.at_level(logging.WARNING, logger="fracture_tune.search.tuner"):
        searcher = build_searcher(config)

    assert (searcher.metric, searcher.mode) == (SCORE_KEY, "max")
    assert "max_concurrent_trials (4) > searcher.n_startup_trials (2)" in caplog.text


def test_resuming_a_folder_without_tune_state_says_to_start_again(tmp_path: Path) -> None:
    with pytest.raises(FractureTuneError, match="no resumable Ray Tune state") as raised:
        restore_tuner(_config(), None, tmp_path)

    assert "without --resume" in str(raised.value.hint)
