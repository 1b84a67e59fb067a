"""The experiment config: one YAML file → typed, validated objects (pydantic v2, unknown keys rejected).

Every value a user can get wrong is checked here, before Ray starts, and reported with its dotted key
path (``scheduler.grace_period``) and a hint. ``--set a.b=c`` overrides go through the same validation.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fracture_tune.data.prepare_settings import config_path
from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config_errors import format_validation_error
from fracture_tune.search.space import ParamSpec, SpaceConfig
from fracture_tune.search.trial_values import check_trial_values
from fracture_tune.trainables.engine_keys import LOWER_IS_BETTER, REPORTED_METRICS
from fracture_tune.trainables.score import ScoreRule


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatasetConfig(StrictModel):
    """Which images to search on. ``path: synthetic`` generates the embedded synthetic set first."""

    path: str = "synthetic"
    synthetic_n: int = Field(default=600, ge=20, description="images to generate when path is 'synthetic'")
    synthetic_seed: int = 0
    image_size: int = Field(default=128, ge=16, le=1024)
    val_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, ge=0.0, lt=1.0)
    split_seed: int = 0
    cache_root: str = ".fracture-tune/datasets"

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DatasetConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% for training")
        return self

    @property
    def is_synthetic(self) -> bool:
        return self.path == "synthetic"


class SearcherConfig(StrictModel):
    """Optuna TPE, driven by Ray's OptunaSearch."""

    seed: int = 0
    n_startup_trials: int = Field(default=4, ge=1)
    multivariate: bool = True
    points_to_evaluate: list[dict[str, Any]] = Field(default_factory=list)
    # Where the Optuna study lives (optuna-dashboard opens it): an Optuna RDB URL; default
    # sqlite:///<run folder>/optuna.db. The study is named after the search.
    storage: str | None = None
    # TPE models at most this many finished trials (the best tenth and the most recent; search/sampler.py),
    # so a suggestion's cost stops growing with the search; 0 keeps every trial.
    history_limit: int = Field(default=1000, ge=0)

    @field_validator("storage")
    @classmethod
    def _storage_without_credentials(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.match(r"^(sqlite|postgresql|mysql|oracle|mssql)(\+\w+)?://", value):
            raise ValueError(f"{value!r} is not an Optuna RDB URL (sqlite:///path.db, postgresql://host/db…)")
        if re.search(r"://[^/\s?#]*@", value) or re.search(r"(?i)\bpassword=", value):
            raise ValueError(
                "must not hold a user or password: the study's storage is saved with Tune's searcher state; "
                "give them to the database driver instead (PGUSER/PGPASSWORD or ~/.pgpass for PostgreSQL)"
            )
        return value


class SchedulerConfig(StrictModel):
    """ASHA over epochs (``training_iteration`` = epochs run)."""

    grace_period: int = Field(default=1, ge=1)
    max_t: int = Field(default=10, ge=1)
    reduction_factor: float = Field(default=2.0, gt=1.0)

    @model_validator(mode="after")
    def _grace_within_max(self) -> SchedulerConfig:
        if self.grace_period > self.max_t:
            raise ValueError(
                f"grace_period ({self.grace_period}) must be <= max_t ({self.max_t}); "
                "ASHA could never stop a trial"
            )
        return self


class ResourcesConfig(StrictModel):
    cpus_per_trial: float = Field(default=1.0, gt=0)
    gpus_per_trial: float = Field(default=0.0, ge=0)
    max_concurrent_trials: int = Field(default=2, ge=1)
    # Run trials one after another in the same worker process instead of starting one per trial: saves the
    # process start, torch import and cold first epoch (~3-5 s a trial on a 2-core CPU, more than a whole
    # 1-epoch quickstart trial; benchmarks/overhead.py). Off by default until resume is tested with it.
    reuse_actors: bool = False

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_or_fraction(cls, value: float) -> float:
        if value > 1 and not float(value).is_integer():
            raise ValueError("more than one GPU per trial must be a whole number (fractions are for < 1)")
        return value


class BudgetConfig(StrictModel):
    num_trials: int = Field(default=8, ge=1)
    time_budget_s: float | None = Field(default=None, gt=0)


class CheckpointConfig(StrictModel):
    """Which trial checkpoints stay on disk (``search/checkpoint_keeper.py``).

    A running trial keeps two: its latest (what a restart resumes from) and the one of the epoch its score
    comes from. Once a trial has ended, only its score epoch's checkpoint stays, and only while the trial is
    among the search's ``keep_best_trials`` best; an errored or interrupted trial keeps its latest too, for
    ``search --resume``. A search of N trials therefore needs ~``keep_best_trials`` + 2 x the concurrent
    trials checkpoints on disk, not N x epochs.
    """

    keep_best_trials: int = Field(default=5, ge=1)
    # Accepted and ignored: Tune's num_to_keep would force an experiment snapshot every num_to_keep
    # checkpoints of a trial; which checkpoints stay is keep_best_trials' job.
    num_to_keep: int | None = Field(default=None, ge=1)


class BestTrialRule(StrictModel):
    """How a trial's validation curve becomes its score: the one number ASHA's rungs, the Optuna study,
    MLflow, ``search show`` and the choice of the best trial all use (``trainables/score.py``).

    ``scope: best_epoch`` (default): the best value at or after epoch ``min_epochs``; ``last_epoch``: the
    last value. ``min_epochs`` defaults to ASHA's second rung (``grace_period x reduction_factor``, at most
    the planned epochs): a trial counts once it has survived ASHA's first decision, and an early epoch that
    spiked on a small validation split is not part of any score. The winner is the best score among trials
    that ended for good (finished, stopped by ASHA, cut by the time budget) and ran at least ``min_epochs``
    epochs; equal scores go to the better-trained trial (more epochs), then the earlier one. If no trial
    reached ``min_epochs``, the rule falls back to all trials and says so.
    """

    scope: Literal["best_epoch", "last_epoch"] = "best_epoch"
    min_epochs: int | None = Field(default=None, ge=1)


class EvaluationConfig(StrictModel):
    """How trials are scored, and how ``retrain --search`` confirms the winner (docs/configuration.md "A
    less noisy choice"). Validation AUROC on a couple of hundred images spreads about ±0.02 between runs, as
    much as the differences a search ranks on; both options trade compute for a less noisy choice.

    ``folds: K`` (K >= 2): each trial trains K models on grouped, stratified folds of the train+validation
    images (``data/folds.py``; the test split is never in a fold) and reports the fold means each epoch,
    so ASHA and TPE rank on the mean. ``rerank_top_k: k`` (k >= 2): retrain trains the search's k best
    distinct configurations ``rerank_seeds`` times each with fresh seeds and keeps the best mean
    validation score (``search/retrain/selection.py``).
    """

    folds: int = Field(default=0, ge=0)
    fold_seed: int = 0
    rerank_top_k: int = Field(default=0, ge=0)
    rerank_seeds: int = Field(default=1, ge=1)

    @field_validator("folds")
    @classmethod
    def _zero_or_at_least_two(cls, value: int) -> int:
        if value == 1:
            raise ValueError("one fold is no cross-validation: use 0 (the validation split) or K >= 2")
        return value

    @field_validator("rerank_top_k")
    @classmethod
    def _rerank_zero_or_at_least_two(cls, value: int) -> int:
        if value == 1:
            raise ValueError("re-ranking one finalist changes nothing: use 0 (off) or k >= 2")
        return value


class TrackingConfig(StrictModel):
    tracking_uri: str | None = None  # None → $MLFLOW_TRACKING_URI → sqlite:///./mlflow.db
    experiment_name: str = "fracture-tune"
    # Tune's own views, off by default (docs/searching.md "Ray's own views"): TensorBoard event files per
    # trial (Tune's TBX logger; needs tensorboardX, the [tensorboard] extra) and Tune's periodic status table
    # on stdout.
    tensorboard: bool = False
    status_table: bool = False


class ExperimentConfig(StrictModel):
    """One search. ``training`` holds fixed engine values (flat keys), ``space`` what Optuna samples."""

    dataset: DatasetConfig = Field(default_factory=lambda: DatasetConfig())
    training: dict[str, Any] = Field(default_factory=dict)
    space: SpaceConfig = Field(default_factory=lambda: SpaceConfig())
    searcher: SearcherConfig = Field(default_factory=lambda: SearcherConfig())
    scheduler: SchedulerConfig = Field(default_factory=lambda: SchedulerConfig())
    resources: ResourcesConfig = Field(default_factory=lambda: ResourcesConfig())
    budget: BudgetConfig = Field(default_factory=lambda: BudgetConfig())
    checkpoint: CheckpointConfig = Field(default_factory=lambda: CheckpointConfig())
    max_failures: int = Field(default=1, ge=0)
    metric: str = "val_auroc"
    mode: Literal["min", "max"] | None = None
    best_trial: BestTrialRule = Field(default_factory=lambda: BestTrialRule())
    evaluation: EvaluationConfig = Field(default_factory=lambda: EvaluationConfig())
    tracking: TrackingConfig = Field(default_factory=lambda: TrackingConfig())

    @field_validator("metric")
    @classmethod
    def _metric_is_reported(cls, value: str) -> str:
        if value not in REPORTED_METRICS:
            raise ValueError(f"the trainable never reports {value!r}; it reports {sorted(REPORTED_METRICS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.mode is None:
            self.mode = "min" if self.metric in LOWER_IS_BETTER else "max"
        check_trial_values(self.training, self.space.resolved_params(), self.dataset.image_size)
        self.space.check_points(self.searcher.points_to_evaluate)
        return self

    @property
    def metric_mode(self) -> str:
        return self.mode or "max"

    @property
    def min_epochs(self) -> int:
        """``best_trial.min_epochs``, or ASHA's second rung (at most the planned epochs) when unset."""
        if self.best_trial.min_epochs is not None:
            return min(self.best_trial.min_epochs, self.planned_epochs)
        second_rung = math.ceil(self.scheduler.grace_period * self.scheduler.reduction_factor)
        return max(1, min(second_rung, self.planned_epochs))

    @property
    def score_rule(self) -> ScoreRule:
        """The search's one definition of a trial's score (``trainables/score.py``)."""
        return ScoreRule(self.metric, self.metric_mode, self.min_epochs, self.best_trial.scope)

    @property
    def planned_epochs(self) -> int:
        """Epochs a trial runs unless ASHA stops it."""
        epochs = self.training.get("epochs")
        return min(int(epochs), self.scheduler.max_t) if epochs else self.scheduler.max_t


def upsampling_note(config: ExperimentConfig) -> str | None:
    """Resolution as a searched dimension: the cache is prepared once, at ``dataset.image_size``, and each
    trial resizes it to its ``input_size``. A size above the cache's trains on upsampled images — allowed (a
    model may need a larger input than the data has), and said once when a search starts, with the size to
    prepare; None when every size fits."""
    spec = config.space.resolved_params().get("input_size")
    if spec is None:
        sizes, where = [int(config.training.get("input_size") or 0)], "training.input_size"
    elif spec.type == "categorical":
        sizes, where = [int(choice) for choice in spec.choices or []], "space.params.input_size"
    else:
        sizes, where = [int(spec.high or 0)], "space.params.input_size.high"
    largest = max(sizes, default=0)
    if largest <= config.dataset.image_size:
        return None
    return (
        f"{where}: input size {largest} is larger than dataset.image_size {config.dataset.image_size}: those "
        f"trials train on upsampled images; to search resolution, set dataset.image_size: {largest}, the "
        "largest size in the space (the cache is prepared once at that size and each trial resizes it to its "
        "input_size)"
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=c`` → (["a", "b"], parsed c). Values are YAML scalars (``1e-3``, ``true``, ``[1, 2]``)."""
    if "=" not in text:
        raise FractureTuneError(f"--set {text!r} is not key=value", hint="e.g. --set budget.num_trials=4")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise FractureTuneError(f"--set {text!r} has an empty key", hint="e.g. --set budget.num_trials=4")
    return path, _parse_value(raw)


def _parse_value(raw: str) -> Any:
    # YAML 1.1 reads "3e-3" as a string; users mean a number.
    for number in (int, float):
        try:
            return number(raw)
        except ValueError:
            pass
    return yaml.safe_load(raw) if raw.strip() else ""


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in ``raw``: ``["a.b=c", ...]`` (YAML scalars, as ``--set``) or ``{"a.b": value}``."""
    if isinstance(overrides, Mapping):
        pairs = [([part for part in str(key).split(".") if part], value) for key, value in overrides.items()]
    else:
        pairs = [parse_override(text) for text in overrides]
    for path, value in pairs:
        if not path:
            raise FractureTuneError("an override has an empty key", hint="e.g. {'budget.num_trials': 4}")
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return raw


def load_config(
    path_or_name: str | os.PathLike[str], overrides: Sequence[str] | Mapping[str, Any] | None = None
) -> ExperimentConfig:
    """Read and validate an experiment YAML (a path or a shipped config's name), with overrides applied.

    Raises ``FractureTuneError`` naming the bad key, before anything starts.
    """
    config_file = config_path(path_or_name)
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise FractureTuneError(f"{config_file} is not valid YAML: {error}") from error
    if not isinstance(raw, dict):
        raise FractureTuneError(f"{config_file} must hold a mapping of sections (dataset, space, ...)")
    return config_from_dict(apply_overrides(raw, overrides or []), source=str(config_file))


def config_from_dict(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    from pydantic import ValidationError

    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as error:
        message, hint = format_validation_error(error, ExperimentConfig, source)
        raise FractureTuneError(message, hint=hint) from None


def config_to_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


__all__ = [
    "BestTrialRule",
    "DatasetConfig",
    "EvaluationConfig",
    "ExperimentConfig",
    "ParamSpec",
    "apply_overrides",
    "config_from_dict",
    "config_to_yaml",
    "load_config",
]
