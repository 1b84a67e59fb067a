"""Binary classification metrics from labels and positive-class probabilities: one function for the
per-epoch metrics a trial reports and the test metrics a retrain reports.

A case is called positive when ``probability >= threshold``. Where a metric is undefined (a split or a
slice holding one class only, no case called positive) ``undefined`` decides what is reported:
- ``"finite"`` (what trials report: Tune's schedulers cannot act on NaN, ray#6659): AUROC 0.5 (no ranking
  information, with a warning); sensitivity with no positives / specificity with no negatives 0.0; balanced
  accuracy the mean recall over the classes present (as scikit-learn); F1 with no true positive 0.0
  (scikit-learn's ``zero_division=0``).
- ``"nan"`` (what a test report shows: an undefined number is not a zero): NaN for each of those.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)

# Probabilities are clipped before the log so a confident mistake costs ~34.5 nats, not infinity.
_PROBABILITY_EPS = 1e-15


def binary_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float = 0.5,
    *,
    undefined: Literal["finite", "nan"] = "finite",
) -> dict[str, float]:
    """loss (cross entropy, nats), accuracy, balanced_accuracy, auroc, sensitivity, specificity, f1."""
    y = np.asarray(labels).astype(np.int64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    if y.size == 0:
        raise ValueError("no samples to compute metrics on")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities contain NaN or inf")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (negative) or 1 (positive)")
    p_true = np.clip(np.where(y == 1, p, 1.0 - p), _PROBABILITY_EPS, 1.0)
    predicted = p >= threshold
    positives, negatives = y == 1, y == 0
    tp = int(np.sum(predicted & positives))
    tn = int(np.sum(~predicted & negatives))
    fp = int(np.sum(predicted & negatives))
    fn = int(np.sum(~predicted & positives))
    n_pos, n_neg = tp + fn, tn + fp
    missing = 0.0 if undefined == "finite" else math.nan
    sensitivity = tp / n_pos if n_pos else missing
    specificity = tn / n_neg if n_neg else missing
    if undefined == "finite":
        present = [rate for rate, count in ((sensitivity, n_pos), (specificity, n_neg)) if count]
        balanced = float(np.mean(present))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    else:
        balanced = (sensitivity + specificity) / 2.0
        f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else math.nan
    return {
        "loss": float(np.mean(-np.log(p_true))),
        "accuracy": (tp + tn) / y.size,
        "balanced_accuracy": balanced,
        "auroc": _auroc(y, p, n_pos, n_neg, missing),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "f1": f1,
    }


def _auroc(y: np.ndarray, p: np.ndarray, n_pos: int, n_neg: int, missing: float) -> float:
    if n_pos == 0 or n_neg == 0:
        if math.isnan(missing):
            return math.nan
        log.warning("AUROC is undefined on %d samples of a single class; reporting 0.5", y.size)
        return 0.5
    return rank_auroc(y, p)


def rank_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U, tied scores share their mid-rank).

    Equal to scikit-learn's ``roc_auc_score`` (checked in the tests), without importing it: scikit-learn's
    first import costs ~1.1 s of CPU in every fresh trial worker (measured on the 2-core VM). ``labels`` are
    0/1 and hold both classes.
    """
    positive = np.asarray(labels).ravel() == 1
    scores = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(scores.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based mid-ranks
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
