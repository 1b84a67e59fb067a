"""Test-set metrics with stratified bootstrap confidence intervals, and the operating threshold.

Pure functions of numpy arrays (labels 1 = positive/fractured, scores = probability of positive), so
they are unit-tested in milliseconds and shared by `retrain` and `evaluate`. A case is called positive
when ``score >= threshold``; the same rule is used everywhere (threshold choice, metrics, predict).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.metrics import binary_metrics

METRIC_NAMES: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "auroc",
    "sensitivity",
    "specificity",
    "f1",
)


@dataclass(frozen=True)
class MetricInterval:
    """A point estimate and its percentile bootstrap interval."""

    value: float
    lower: float
    upper: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ConfusionCounts:
    true_negative: int
    false_positive: int
    false_negative: int
    true_positive: int

    def as_matrix(self) -> np.ndarray:
        """Rows = true class (negative, positive), columns = predicted class."""
        return np.array(
            [[self.true_negative, self.false_positive], [self.false_negative, self.true_positive]]
        )


def _check_inputs(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in length")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    return labels, scores


def confusion_counts(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> ConfusionCounts:
    labels, scores = _check_inputs(labels, scores)
    predicted = scores >= threshold
    positive = labels == 1
    return ConfusionCounts(
        true_negative=int(np.sum(~predicted & ~positive)),
        false_positive=int(np.sum(predicted & ~positive)),
        false_negative=int(np.sum(~predicted & positive)),
        true_positive=int(np.sum(predicted & positive)),
    )


def report_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """The report's metrics (``METRIC_NAMES``) at ``threshold``; NaN where one is undefined."""
    labels, scores = _check_inputs(labels, scores)
    values = binary_metrics(labels, scores, threshold, undefined="nan")
    return {name: values[name] for name in METRIC_NAMES}


def bootstrap_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float = 0.5,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, MetricInterval]:
    """Point metrics plus stratified percentile bootstrap intervals.

    Stratified: each resample draws the positives and the negatives separately (with replacement), so
    every resample keeps the test set's class counts and AUROC/sensitivity are always defined.
    Seeded, so the same inputs give the same intervals.
    """
    labels, scores = _check_inputs(labels, scores)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples=}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence=}")
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if positives.size == 0 or negatives.size == 0:
        raise FractureTuneError(
            f"cannot evaluate: the labelled set has {positives.size} positive and {negatives.size} "
            "negative images; both classes are needed",
            hint="evaluate on a split or folder that contains both classes",
        )
    point = report_metrics(labels, scores, threshold)
    rng = np.random.default_rng(seed)
    samples = np.empty((n_resamples, len(METRIC_NAMES)), dtype=np.float64)
    for row in range(n_resamples):
        chosen = np.concatenate(
            [rng.choice(positives, positives.size, replace=True), rng.choice(negatives, negatives.size)]
        )
        values = binary_metrics(labels[chosen], scores[chosen], threshold, undefined="nan")
        samples[row] = [values[name] for name in METRIC_NAMES]
    alpha = (1.0 - confidence) / 2.0
    lower = np.nanquantile(samples, alpha, axis=0)
    upper = np.nanquantile(samples, 1.0 - alpha, axis=0)
    return {
        name: MetricInterval(point[name], float(lower[i]), float(upper[i]))
        for i, name in enumerate(METRIC_NAMES)
    }


def threshold_for_sensitivity(labels: np.ndarray, scores: np.ndarray, target_sensitivity: float) -> float:
    """The highest threshold whose sensitivity on (labels, scores) reaches ``target_sensitivity``.

    The highest such threshold keeps specificity as high as the sensitivity target allows. Meant for the
    VALIDATION split; the test split only reports what that threshold then gives.
    """
    labels, scores = _check_inputs(labels, scores)
    if not 0.0 < target_sensitivity <= 1.0:
        raise FractureTuneError(
            f"target sensitivity must be in (0, 1], got {target_sensitivity}",
            hint="pass e.g. --target-sensitivity 0.9",
        )
    positive_scores = np.sort(scores[labels == 1])[::-1]
    if positive_scores.size == 0:
        raise FractureTuneError(
            "cannot choose a threshold: the validation split has no positive images",
            hint="prepare the dataset with a larger validation fraction",
        )
    # The k highest positive scores must be called positive: k = ceil(target * n_pos), guarded
    # against float noise such as 0.9 * 10 = 9.000000000000002.
    needed = min(positive_scores.size, math.ceil(round(target_sensitivity * positive_scores.size, 9)))
    return float(positive_scores[needed - 1])


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds), from (0, 0) to (1, 1)."""
    labels, scores = _check_inputs(labels, scores)
    thresholds = np.concatenate([[np.inf], np.unique(scores)[::-1]])
    n_pos = max(int(labels.sum()), 1)
    n_neg = max(int((labels == 0).sum()), 1)
    tpr = np.array([np.sum((scores >= t) & (labels == 1)) / n_pos for t in thresholds])
    fpr = np.array([np.sum((scores >= t) & (labels == 0)) / n_neg for t in thresholds])
    return fpr, tpr, thresholds


def intervals_as_dict(intervals: dict[str, MetricInterval]) -> dict[str, dict[str, float]]:
    return {name: interval.as_dict() for name, interval in intervals.items()}


def format_intervals(intervals: dict[str, MetricInterval]) -> list[str]:
    """One line per metric: ``auroc  0.912 [0.871, 0.948]``."""
    return [f"{name:<18} {iv.value:.3f} [{iv.lower:.3f}, {iv.upper:.3f}]" for name, iv in intervals.items()]


def paired_auroc_difference(
    labels: np.ndarray,
    scores: np.ndarray,
    reference_scores: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MetricInterval:
    """AUROC(scores) − AUROC(reference_scores) on the same images, with a paired percentile bootstrap CI.

    Paired: each resample draws images (positives and negatives separately, as ``bootstrap_metrics``) and
    scores both models on that same draw, so the shared difficulty of the images cancels out.
    """
    labels, scores = _check_inputs(labels, scores)
    _, reference_scores = _check_inputs(labels, reference_scores)
    positives = np.flatnonzero(labels == 1)
    negatives = np.flatnonzero(labels == 0)
    if positives.size == 0 or negatives.size == 0:
        raise FractureTuneError("a paired AUROC difference needs both classes among the images")
    point = _auroc(labels, scores) - _auroc(labels, reference_scores)
    rng = np.random.default_rng(seed)
    differences = np.empty(n_resamples, dtype=np.float64)
    for row in range(n_resamples):
        chosen = np.concatenate(
            [rng.choice(positives, positives.size, replace=True), rng.choice(negatives, negatives.size)]
        )
        drawn = labels[chosen]
        differences[row] = _auroc(drawn, scores[chosen]) - _auroc(drawn, reference_scores[chosen])
    alpha = (1.0 - confidence) / 2.0
    return MetricInterval(
        float(point), float(np.quantile(differences, alpha)), float(np.quantile(differences, 1.0 - alpha))
    )


def _auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(binary_metrics(labels, scores)["auroc"])
