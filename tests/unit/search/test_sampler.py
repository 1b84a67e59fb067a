"""TPE with a bounded memory: exactly Optuna's TPE up to the limit, the best and latest trials beyond it."""

from __future__ import annotations

import warnings

import optuna

from fracture_tune.search.sampler import BoundedTPESampler, _RecentAndBestTrials


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3, 3)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return -((x - 1) ** 2) + (0.5 if kind == "b" else 0.0)


def _study(sampler: optuna.samplers.BaseSampler, trials: int) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(_objective, n_trials=trials)
    return study


def test_up_to_the_limit_it_suggests_exactly_what_optunas_tpe_does() -> None:
    settings = {"seed": 3, "multivariate": True, "n_startup_trials": 5}
    plain = _study(optuna.samplers.TPESampler(**settings), 40)
    bounded = _study(BoundedTPESampler(history_limit=40, **settings), 40)
    assert [t.params for t in bounded.trials] == [t.params for t in plain.trials]


def test_beyond_the_limit_tpe_sees_the_best_and_the_latest_trials_only() -> None:
    study = _study(optuna.samplers.RandomSampler(seed=0), 300)
    view = _RecentAndBestTrials(study, limit=50)
    seen = view._get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(seen) == 50
    ranked = sorted(study.trials, key=lambda trial: -float(trial.value or 0))
    assert {trial.number for trial in ranked[:5]} <= {trial.number for trial in seen}, "the best are kept"
    assert {trial.number for trial in study.trials[-40:]} <= {trial.number for trial in seen}, "the latest"
    sampler = BoundedTPESampler(history_limit=50, seed=0, n_startup_trials=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.sampler = sampler
        study.optimize(_objective, n_trials=5)  # samples from the bounded view
    assert len(study.trials) == 305
