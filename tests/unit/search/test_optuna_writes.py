"""How a trial's end reaches the search's Optuna study (the study ``search --resume`` and TPE read).

A user would notice if a pruned trial lost its value (TPE would learn nothing from ASHA's stops), if a failed
trial got a value, if epochs or user attributes went missing from the study, or if ``--resume`` could not end
a rerun errored trial again.
"""

from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from fracture_tune.search.optuna_writes import end_trial, reopen_trial


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path}/optuna.db")
    return optuna.create_study(storage=storage, study_name="s", direction="maximize")


def _ended(study: optuna.Study, trial_id: int) -> optuna.trial.FrozenTrial:
    return study._storage.get_trial(trial_id)


def test_a_completed_trial_keeps_its_value_epochs_and_attributes(study: optuna.Study) -> None:
    trial = study.ask()

    end_trial(study, trial._trial_id, TrialState.COMPLETE, 0.83, {1: 0.7, 2: 0.83}, {"stop": "finished"})

    frozen = _ended(study, trial._trial_id)
    assert frozen.state == TrialState.COMPLETE
    assert frozen.value == 0.83
    assert frozen.intermediate_values == {1: 0.7, 2: 0.83}
    assert frozen.user_attrs == {"stop": "finished"}
    assert frozen.datetime_complete is not None
    assert study.best_trial.number == trial.number


def test_a_pruned_trial_is_worth_its_last_finite_epoch_and_a_failed_one_nothing(study: optuna.Study) -> None:
    pruned, failed = study.ask(), study.ask()

    end_trial(study, pruned._trial_id, TrialState.PRUNED, 0.99, {1: 0.6, 2: 0.65, 3: math.nan}, {})
    end_trial(study, failed._trial_id, TrialState.FAIL, 0.9, {1: 0.5}, {"error": "boom"})

    assert _ended(study, pruned._trial_id).value == 0.65
    assert _ended(study, pruned._trial_id).intermediate_values == {1: 0.6, 2: 0.65}  # NaN left out
    assert _ended(study, failed._trial_id).state == TrialState.FAIL
    assert _ended(study, failed._trial_id).value is None


def test_a_reopened_failed_trial_can_end_again_and_a_finished_one_stays_finished(study: optuna.Study) -> None:
    failed, complete = study.ask(), study.ask()
    end_trial(study, failed._trial_id, TrialState.FAIL, None, {1: 0.5}, {})
    end_trial(study, complete._trial_id, TrialState.COMPLETE, 0.7, {1: 0.7}, {})

    reopen_trial(study._storage, failed._trial_id)
    reopen_trial(study._storage, complete._trial_id)

    assert _ended(study, failed._trial_id).state == TrialState.RUNNING
    assert _ended(study, failed._trial_id).intermediate_values == {1: 0.5}
    assert _ended(study, complete._trial_id).state == TrialState.COMPLETE
    end_trial(study, failed._trial_id, TrialState.COMPLETE, 0.8, {1: 0.5, 2: 0.8}, {})
    assert _ended(study, failed._trial_id).value == 0.8


def test_a_storage_without_optunas_session_helpers_gets_the_same_end_value_by_value() -> None:
    study = optuna.create_study(direction="maximize")  # in memory: no RDB session to write in
    trial = study.ask()

    end_trial(study, trial._trial_id, TrialState.PRUNED, None, {1: 0.4, 2: 0.55}, {"stop": "asha"})

    frozen = _ended(study, trial._trial_id)
    assert (frozen.state, frozen.value) == (TrialState.PRUNED, 0.55)
    assert frozen.intermediate_values == {1: 0.4, 2: 0.55}
    assert frozen.user_attrs == {"stop": "asha"}
