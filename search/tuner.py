"""Assemble and run the Ray Tune search: OptunaSearch (seeded TPE) + ASHA + resources + budgets.

ASHA and the time budget are Ray's own, subclassed only to write down why each trial ends (``stops``).

``build_tuner`` is the one place the Tune objects are put together; ``fracture_tune.search.run`` drives a
whole search (data, MLflow, the Tuner, results) and its resume.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig
from fracture_tune.search.space import DefineByRunSpace
from fracture_tune.search.stops import StopLedger
from fracture_tune.trainables.score import EPOCH_SCORE_KEY, SCORE_KEY

logger = logging.getLogger(__name__)


def fixed_trial_values(config: ExperimentConfig) -> dict[str, Any]:
    """Values every trial gets (the YAML's ``training``), with ``epochs`` capped at ASHA's ``max_t``."""
    values = dict(config.training)
    values["epochs"] = config.planned_epochs
    return values


def build_searcher(config: ExperimentConfig, run_dir: Path | None = None) -> Any:
    """Seeded TPE through Ray's OptunaSearch; with ``run_dir`` the study lives in the search's Optuna storage
    under the search's name and learns why trials ended (``optuna_study``)."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from fracture_tune.search.optuna_study import open_storage, recording_searcher, storage_url
    from fracture_tune.search.sampler import BoundedTPESampler

    if config.resources.max_concurrent_trials > config.searcher.n_startup_trials:
        # ray#52535: every trial launched before n_startup_trials complete is sampled at random.
        logger.warning(
            "max_concurrent_trials (%d) > searcher.n_startup_trials (%d): about %d trials will be random "
            "before TPE takes over",
            config.resources.max_concurrent_trials,
            config.searcher.n_startup_trials,
            config.resources.max_concurrent_trials + config.searcher.n_startup_trials - 1,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # multivariate TPE
        sampler = BoundedTPESampler(
            history_limit=config.searcher.history_limit,
            seed=config.searcher.seed,
            multivariate=config.searcher.multivariate,
            n_startup_trials=config.searcher.n_startup_trials,
        )
    # Ray's OptunaSearch enqueues points_to_evaluate with study.enqueue_trial, which a define-by-run space
    # honours (suggest_* return the enqueued values); tests/unit/search/test_space.py checks it.
    settings: dict[str, Any] = {
        "space": DefineByRunSpace(config.space.resolved_params()),
        "metric": SCORE_KEY,  # the trial's score (trainables/score.py), not the raw metric
        "mode": config.metric_mode,
        "sampler": sampler,
        "points_to_evaluate": [dict(point) for point in config.searcher.points_to_evaluate] or None,
    }
    if run_dir is None:  # the study in memory (benchmarks that time Tune alone)
        return OptunaSearch(**settings)
    storage = open_storage(storage_url(config.searcher.storage, run_dir))
    return recording_searcher(
        config.score_rule,
        run_dir,
        storage_url(config.searcher.storage, run_dir),
        study_name=run_dir.name,
        storage=storage,
        **settings,
    )


def build_trainable(
    config: ExperimentConfig, arrays: Any, folds: Any = None, fit_function: Any = None
) -> Any:
    """``train_trial`` with the dataset (and the fold assignment, for ``evaluation.folds``) in the object
    store (put once), the search's score rule and the per-trial resources. ``fit_function`` replaces the
    training engine (the scale benchmark's fixed-time step)."""
    from ray import tune

    from fracture_tune.trainables.tune_adapter import train_trial

    resources = {"cpu": config.resources.cpus_per_trial, "gpu": config.resources.gpus_per_trial}
    trainable = tune.with_parameters(
        train_trial, data=arrays, folds=folds, score_rule=config.score_rule, fit_function=fit_function
    )
    return tune.with_resources(trainable, resources)


def short_trial_dirname(trial: Any) -> str:
    # Tune's default dir names embed the whole config and overflow path limits.
    return f"trial_{trial.trial_id}"


def tune_result_loggers(tensorboard: bool = False) -> list[Any]:
    """Tune's CSV and JSON result files (Tune's ResultGrid and ``search show`` read them; kept whole across a
    trial's restart: ``search/result_loggers.py``); TensorBoard's event files only when
    ``tracking.tensorboard`` asks for them.

    Tune's default TensorBoard logger imports torch in the driver for event files nothing here reads (MLflow
    is the tracking UI); a search runs with ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1`` (``run._search_call``)
    and these explicitly.
    """
    from fracture_tune.search.result_loggers import CsvResultLogger, JsonResultLogger

    loggers: list[Any] = [CsvResultLogger(), JsonResultLogger()]
    if tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        loggers.append(TBXLoggerCallback())
    return loggers


def build_run_config(config: ExperimentConfig, name: str, storage_root: Path, callbacks: list[Any]) -> Any:
    from ray import tune

    from fracture_tune.search.stop_recording import BudgetStopper

    budget = config.budget.time_budget_s
    return tune.RunConfig(
        name=name,
        storage_path=str(storage_root),
        callbacks=[*callbacks, *tune_result_loggers(config.tracking.tensorboard)],
        # Our ProgressCallback prints plain lines; Tune's own status table only on request.
        verbose=1 if config.tracking.status_table else 0,
        # Which checkpoints stay is the CheckpointKeeper's (search/checkpoint_keeper.py): Ray's num_to_keep
        # would force an experiment snapshot every num_to_keep checkpoints of a trial (a rewrite of the whole
        # experiment state, ~15 KB a trial, every few seconds). Ray orders them by the epoch's own score.
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=None,
            checkpoint_score_attribute=EPOCH_SCORE_KEY,
            checkpoint_score_order=config.metric_mode,
        ),
        failure_config=tune.FailureConfig(max_failures=config.max_failures),
        # budget.time_budget_s as Tune's own TimeoutStopper, noting when it ran out (trials it cuts off are
        # told apart from ASHA's stops; see stops.py).
        stop=BudgetStopper(budget, StopLedger(storage_root / name)) if budget else None,
    )


def build_tuner(
    config: ExperimentConfig,
    arrays: Any,
    name: str,
    storage_root: Path,
    callbacks: list[Any],
    folds: Any = None,
    fit_function: Any = None,
) -> Any:
    from ray import tune

    from fracture_tune.search.stop_recording import RecordingASHA

    scheduler = RecordingASHA(
        StopLedger(storage_root / name),
        config.planned_epochs,
        time_attr="training_iteration",
        grace_period=config.scheduler.grace_period,
        max_t=config.scheduler.max_t,
        reduction_factor=config.scheduler.reduction_factor,
    )
    tune_config = tune.TuneConfig(
        metric=SCORE_KEY,  # ASHA's rungs compare trials' scores (trainables/score.py)
        mode=config.metric_mode,
        search_alg=build_searcher(config, storage_root / name),
        scheduler=scheduler,
        num_samples=config.budget.num_trials,
        max_concurrent_trials=config.resources.max_concurrent_trials,
        trial_dirname_creator=short_trial_dirname,
        # Every trial asks for the same resources and train_trial frees its model (and CUDA cache) when it
        # ends, so an actor can run the next trial (resources.reuse_actors; see ResourcesConfig).
        reuse_actors=config.resources.reuse_actors,
    )
    return tune.Tuner(
        build_trainable(config, arrays, folds, fit_function),
        param_space=fixed_trial_values(config),
        tune_config=tune_config,
        run_config=build_run_config(config, name, storage_root, callbacks),
    )


def restore_tuner(
    config: ExperimentConfig, arrays: Any, run_dir: Path, folds: Any = None, fit_function: Any = None
) -> Any:
    """Continue an interrupted search: finished trials stay, unfinished/errored ones resume from checkpoints.

    The searcher (Optuna study included) and the callbacks come back from the experiment folder; the
    search space and budgets cannot change on resume (ray PR#33495).
    """
    from ray import tune

    if not tune.Tuner.can_restore(str(run_dir)):
        raise FractureTuneError(
            f"{run_dir} holds no resumable Ray Tune state",
            hint="the search may have been killed before its first snapshot; start it again without --resume",
        )
    return tune.Tuner.restore(
        str(run_dir),
        trainable=build_trainable(config, arrays, folds, fit_function),
        resume_unfinished=True,
        resume_errored=True,
    )
