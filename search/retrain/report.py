"""The retrain report as typed objects, and the computations that fill it from trained models.

``RetrainReport.to_dict()`` is ``report.json``'s layout; ``report_files`` renders it to Markdown and plots.
Every test number comes from the models' test probabilities, scored once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fracture_tune.classifier.evaluation import (
    METRIC_NAMES,
    ConfusionCounts,
    MetricInterval,
    bootstrap_metrics,
    confusion_counts,
    report_metrics,
    threshold_for_sensitivity,
)

if TYPE_CHECKING:
    from fracture_tune.data.dataset import DatasetArrays
    from fracture_tune.search.records import BestTrial
    from fracture_tune.search.retrain.types import TrainedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThresholdChoice:
    """The operating threshold, chosen on validation for a target sensitivity, and what it gives on test."""

    value: float
    target_sensitivity: float
    chosen_on: str
    validation: dict[str, float]
    test: dict[str, MetricInterval]
    test_confusion: ConfusionCounts


@dataclass(frozen=True)
class ModelEvaluation:
    """One model's test split, scored once: metrics at 0.5 and at the operating threshold, with 95 % CIs."""

    test_size: int
    test_positives: int
    test: dict[str, MetricInterval]
    threshold: ThresholdChoice
    train_seconds: float


@dataclass(frozen=True)
class OptimizedResult(ModelEvaluation):
    final_epoch: dict[str, float]  # the training metrics of the epoch whose weights the model holds
    weights_epoch: int = 0  # that epoch: its score epoch by the search's rule, else the last


@dataclass(frozen=True)
class BaselineResult(ModelEvaluation):
    recipe: dict[str, Any]


@dataclass(frozen=True)
class DatasetSummary:
    cache_dir: str
    key: str
    split_hash: str
    class_names: list[str]
    train_size: int
    val_size: int
    test_size: int


@dataclass(frozen=True)
class TrialSummary:
    """The search trial a retrain rebuilt (``None`` for a config given as JSON)."""

    trial_id: str
    metric: str
    mode: str
    metric_value: float
    best_epoch: int
    epochs_run: int
    metric_range: list[float]
    mlflow_run_id: str


@dataclass(frozen=True)
class SeedSpread:
    seeds: list[int]
    spread: dict[str, dict[str, float]]  # metric -> mean, std, min, max over the seeds (threshold 0.5)


@dataclass(frozen=True)
class TrackingRef:
    tracking_uri: str  # redacted
    experiment_id: str
    run_id: str
    parent_run_id: str


@dataclass(frozen=True)
class LoggedModel:
    uri: str
    local_dir: str
    model_sha256: str  # of every file of the logged model folder (sha256_of_folder): what MLflow serves
    weights_sha256: str  # of its weights.pt: what every load checks before reading the weights


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    version: str
    champion: bool
    decision: str
    uri: str
    champion_version: str = ""  # the version the champion alias names after this registration ("": none)

    def not_champion_note(self) -> str:
        """What to use instead of ``@champion`` when this version is not the champion ("" when it is)."""
        if self.champion:
            return ""
        alias = f"models:/{self.name}@champion"
        holder = f"is still version {self.champion_version}" if self.champion_version else "names no version"
        return f"not promoted: {alias} {holder}; to use this model, pass its version: --model {self.uri}"


@dataclass
class RetrainReport:
    source: str
    search: str
    trial: TrialSummary | None
    dataset: DatasetSummary
    train_on: str
    epochs: int
    config: dict[str, Any]
    optimized: OptimizedResult
    seeds: SeedSpread
    reproduction: dict[str, Any]
    baseline: BaselineResult | None
    history: dict[str, list[dict[str, float]]]
    warnings: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)
    mlflow: TrackingRef | None = None
    model: LoggedModel | None = None
    registry: RegistryEntry | None = None
    # retrain --rerank: the finalists' fresh-seed scores (``selection.RerankEntry``) and the winner
    rerank: dict[str, Any] | None = None
    # retrain --ensemble: members, the single best model's evaluation, the paired AUROC difference
    ensemble: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``report.json``'s layout (NaN kept; ``report_files`` writes it as null). Parts a retrain did not
        produce (no registration, no warnings) are left out, not written as null."""
        payload = asdict(self)
        for key in ("warnings", "mlflow", "model", "registry", "rerank", "ensemble"):
            if not payload[key]:
                del payload[key]
        return payload


def evaluate_on_test(
    trained: TrainedModel, data: DatasetArrays, *, target_sensitivity: float, resamples: int
) -> tuple[dict[str, MetricInterval], ThresholdChoice, int, int]:
    """Test metrics with CIs at 0.5 and at the operating threshold chosen on validation."""
    val_labels = np.asarray(data.labels[data.indices("val")])
    test_labels = np.asarray(data.labels[data.indices("test")])
    threshold = threshold_for_sensitivity(val_labels, trained.val_probabilities, target_sensitivity)
    at_half = bootstrap_metrics(test_labels, trained.test_probabilities, threshold=0.5, n_resamples=resamples)
    at_threshold = bootstrap_metrics(
        test_labels, trained.test_probabilities, threshold=threshold, n_resamples=resamples
    )
    choice = ThresholdChoice(
        value=threshold,
        target_sensitivity=target_sensitivity,
        chosen_on="validation",
        validation=report_metrics(val_labels, trained.val_probabilities, threshold),
        test=at_threshold,
        test_confusion=confusion_counts(test_labels, trained.test_probabilities, threshold),
    )
    return at_half, choice, int(test_labels.size), int(test_labels.sum())


def optimized_result(
    trained: TrainedModel, data: DatasetArrays, *, target_sensitivity: float, resamples: int
) -> OptimizedResult:
    test, threshold, size, positives = evaluate_on_test(
        trained, data, target_sensitivity=target_sensitivity, resamples=resamples
    )
    epoch = trained.weights_epoch or len(trained.history)
    metrics = dict(trained.history[epoch - 1]) if trained.history else {}
    return OptimizedResult(size, positives, test, threshold, trained.train_seconds, metrics, epoch)


def baseline_result(
    trained: TrainedModel, data: DatasetArrays, *, target_sensitivity: float, resamples: int
) -> BaselineResult:
    test, threshold, size, positives = evaluate_on_test(
        trained, data, target_sensitivity=target_sensitivity, resamples=resamples
    )
    return BaselineResult(size, positives, test, threshold, trained.train_seconds, dict(trained.config))


def seed_spread(models: list[TrainedModel], labels: np.ndarray) -> SeedSpread:
    """Mean, std, min and max of the test metrics (threshold 0.5) across the seeds."""
    seeds = [int(model.config["seed"]) for model in models]
    if len(models) < 2:
        return SeedSpread(seeds, {})
    table = np.array(
        [[report_metrics(labels, m.test_probabilities)[name] for name in METRIC_NAMES] for m in models]
    )
    spread = {
        name: {
            "mean": float(table[:, i].mean()),
            "std": float(table[:, i].std(ddof=1)),
            "min": float(table[:, i].min()),
            "max": float(table[:, i].max()),
        }
        for i, name in enumerate(METRIC_NAMES)
    }
    return SeedSpread(seeds, spread)


def reproduction_check(
    trial: BestTrial | None, history: list[dict[str, float]], train_on: str
) -> dict[str, Any]:
    """The retrained model's validation metric at the trial's epoch count vs the trial's range (ray#43900)."""
    if trial is None or not history:
        return {"checked": False, "reason": "no search trial to compare with"}
    if train_on == "train+val":
        return {"checked": False, "reason": "trained on train+val: validation scores are not held out"}
    if trial.metric not in history[0]:
        return {"checked": False, "reason": f"metric {trial.metric!r} is not in the training history"}
    epoch = min(max(trial.epochs_run, 1), len(history))
    value = float(history[epoch - 1][trial.metric])
    low, high = trial.metric_range
    within = low <= value <= high
    # Scoring above the trial's best is a reproduction too (longer schedule, more data); only a result
    # worse than everything the trial showed means the selected config did not reproduce (ray#43900).
    better = value > high if trial.mode == "max" else value < low
    check: dict[str, Any] = {
        "checked": True,
        "metric": trial.metric,
        "epoch": epoch,
        "retrained_value": value,
        "trial_range": [low, high],
        "trial_value": trial.metric_value,
        "within_range": within,
        "reproduced": within or better,
    }
    if better:
        check["note"] = (
            f"retrained {trial.metric} at epoch {epoch} is {value:.4f}, better than the trial's range "
            f"[{low:.4f}, {high:.4f}]: the configuration reproduced"
        )
    elif not within:
        check["warning"] = (
            f"reproduction: retrained {trial.metric} at epoch {epoch} is {value:.4f}, worse than the trial's "
            f"range [{low:.4f}, {high:.4f}] over its {trial.epochs_run} epochs (selected value "
            f"{trial.metric_value:.4f}). Differences: full train split, "
            f"a {history[-1]['epoch']:.0f}-epoch "
            "schedule instead of the trial's; seed noise. Treat the search's ranking as uncertain."
        )
        log.warning(check["warning"])
    return check


def trial_summary(trial: BestTrial | None) -> TrialSummary | None:
    if trial is None:
        return None
    return TrialSummary(
        trial_id=trial.trial_id,
        metric=trial.metric,
        mode=trial.mode,
        metric_value=trial.metric_value,
        best_epoch=trial.best_epoch,
        epochs_run=trial.epochs_run,
        metric_range=list(trial.metric_range),
        mlflow_run_id=trial.mlflow_run_id,
    )


def flat_metrics(report: RetrainReport) -> dict[str, float]:
    """The report's numbers as MLflow metric names: test_auroc, test_auroc_ci_lower, baseline_test_f1..."""
    metrics: dict[str, float] = {}

    def add_intervals(prefix: str, intervals: dict[str, MetricInterval]) -> None:
        for name, interval in intervals.items():
            metrics[f"{prefix}{name}"] = interval.value
            metrics[f"{prefix}{name}_ci_lower"] = interval.lower
            metrics[f"{prefix}{name}_ci_upper"] = interval.upper

    optimized = report.optimized
    add_intervals("test_", optimized.test)
    add_intervals("threshold_test_", optimized.threshold.test)
    metrics["threshold"] = optimized.threshold.value
    metrics["train_seconds"] = optimized.train_seconds
    if report.baseline is not None:
        add_intervals("baseline_test_", report.baseline.test)
        metrics["baseline_train_seconds"] = report.baseline.train_seconds
    for name, spread in report.seeds.spread.items():
        metrics[f"seeds_test_{name}_mean"] = spread["mean"]
        metrics[f"seeds_test_{name}_std"] = spread["std"]
    if report.reproduction.get("checked"):
        metrics["reproduction_retrained_value"] = report.reproduction["retrained_value"]
    if report.ensemble is not None:
        difference = report.ensemble["auroc_minus_single_best"]
        metrics["ensemble_minus_single_best_test_auroc"] = difference["value"]
        metrics["ensemble_minus_single_best_test_auroc_ci_lower"] = difference["lower"]
        metrics["ensemble_minus_single_best_test_auroc_ci_upper"] = difference["upper"]
        metrics["single_best_test_auroc"] = report.ensemble["single_best"]["test"]["auroc"]["value"]
    return {key: float(value) for key, value in metrics.items() if math.isfinite(value)}
