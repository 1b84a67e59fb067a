"""Metrics, bootstrap intervals and threshold choice on hand-made scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from fracture_tune.classifier.evaluation import (
    METRIC_NAMES,
    binary_metrics,
    bootstrap_metrics,
    confusion_counts,
    threshold_for_sensitivity,
)
from fracture_tune.errors import FractureTuneError


def _noisy_scores(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(np.int64)
    scores = np.clip(0.5 + 0.25 * (labels - 0.5) + rng.normal(0, 0.2, n), 0, 1)
    return labels, scores


def test_metrics_match_hand_counts() -> None:
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.6, 0.2, 0.7, 0.4, 0.3, 0.2, 0.1, 0.05])
    counts = confusion_counts(labels, scores, 0.5)
    assert (counts.true_positive, counts.false_negative, counts.false_positive, counts.true_negative) == (
        3,
        1,
        1,
        5,
    )
    metrics = binary_metrics(labels, scores, 0.5)
    assert metrics["sensitivity"] == pytest.approx(0.75)
    assert metrics["specificity"] == pytest.approx(5 / 6)
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["balanced_accuracy"] == pytest.approx((0.75 + 5 / 6) / 2)
    assert metrics["f1"] == pytest.approx(6 / 8)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(labels, scores))


def test_auroc_handles_ties_like_sklearn() -> None:
    labels = np.array([0, 1, 0, 1, 1, 0, 0])
    scores = np.array([0.5, 0.5, 0.2, 0.9, 0.5, 0.5, 0.1])
    assert binary_metrics(labels, scores)["auroc"] == pytest.approx(roc_auc_score(labels, scores))


def test_bootstrap_interval_contains_point_and_narrows_with_n() -> None:
    widths = []
    for n in (60, 1500):
        labels, scores = _noisy_scores(n, seed=n)
        intervals = bootstrap_metrics(labels, scores, n_resamples=1000, seed=3)
        assert set(intervals) == set(METRIC_NAMES)
        for interval in intervals.values():
            assert interval.lower <= interval.value <= interval.upper
        widths.append(intervals["auroc"].upper - intervals["auroc"].lower)
    assert widths[1] < widths[0] / 2  # ~sqrt(25) = 5x narrower; demand at least 2x


def test_bootstrap_is_seeded_and_stratified() -> None:
    labels, scores = _noisy_scores(80, seed=1)
    first = bootstrap_metrics(labels, scores, n_resamples=200, seed=7)
    again = bootstrap_metrics(labels, scores, n_resamples=200, seed=7)
    other = bootstrap_metrics(labels, scores, n_resamples=200, seed=8)
    assert first == again
    assert first != other
    # Stratified: every resample has both classes, so AUROC bounds are finite numbers.
    assert np.isfinite([first["auroc"].lower, first["auroc"].upper]).all()


def test_bootstrap_refuses_a_single_class() -> None:
    with pytest.raises(FractureTuneError, match="both classes"):
        bootstrap_metrics(np.ones(10), np.linspace(0, 1, 10))


def test_threshold_reaches_target_sensitivity_with_best_specificity() -> None:
    # 10 positives; 90 % sensitivity needs 9 of them called positive -> threshold at the 9th highest.
    positive_scores = np.array([0.95, 0.9, 0.85, 0.8, 0.7, 0.65, 0.6, 0.55, 0.3, 0.1])
    negative_scores = np.array([0.5, 0.4, 0.35, 0.2, 0.05, 0.25])
    labels = np.r_[np.ones(10), np.zeros(6)].astype(int)
    scores = np.r_[positive_scores, negative_scores]
    threshold = threshold_for_sensitivity(labels, scores, 0.9)
    assert threshold == pytest.approx(0.3)
    metrics = binary_metrics(labels, scores, threshold)
    assert metrics["sensitivity"] == pytest.approx(0.9)
    assert metrics["specificity"] == pytest.approx(3 / 6)  # 0.5, 0.4, 0.35 fall above 0.3
    # Any higher threshold misses the target.
    assert binary_metrics(labels, scores, threshold + 1e-9)["sensitivity"] < 0.9
    assert threshold_for_sensitivity(labels, scores, 1.0) == pytest.approx(0.1)


def test_threshold_rejects_bad_target_and_missing_positives() -> None:
    with pytest.raises(FractureTuneError, match="target sensitivity"):
        threshold_for_sensitivity(np.array([0, 1]), np.array([0.1, 0.9]), 1.5)
    with pytest.raises(FractureTuneError, match="no positive"):
        threshold_for_sensitivity(np.zeros(4, dtype=int), np.linspace(0, 1, 4), 0.9)


def test_paired_auroc_difference_is_zero_for_the_same_scores_and_positive_for_a_better_model() -> None:
    from fracture_tune.classifier.evaluation import paired_auroc_difference

    rng = np.random.default_rng(0)
    labels = np.array([0] * 120 + [1] * 80)
    weak = rng.normal(labels * 0.6, 1.0)
    strong = weak + labels * 1.0  # the same noise, better separated
    same = paired_auroc_difference(labels, weak, weak, n_resamples=200)
    assert (same.value, same.lower, same.upper) == (0.0, 0.0, 0.0)
    better = paired_auroc_difference(labels, strong, weak, n_resamples=200)
    assert better.value > 0 and better.lower > 0 and better.lower <= better.value <= better.upper
    worse = paired_auroc_difference(labels, weak, strong, n_resamples=200)
    assert worse.value == pytest.approx(-better.value) and worse.upper < 0
