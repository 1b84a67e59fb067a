"""Grouped, stratified K-fold assignment of the train+validation images, for a cross-validated objective.

The test split is never part of a fold (its rows get ``NOT_IN_A_FOLD``), and every group (duplicates, a
patient from a CSV's group column) lies in one fold, so no image of a fold's held-out part has a copy among
that fold's training images. Folds follow the split's own rule (``data/split.py``): whole groups, largest
first, each to the fold whose per-class share it fills best.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fracture_tune.data.dataset import SPLIT_CODES, DatasetArrays
from fracture_tune.data.labels import CLASS_NAMES
from fracture_tune.data.split import assign_groups, group_class_counts
from fracture_tune.errors import FractureTuneError

NOT_IN_A_FOLD = -1
MIN_FOLDS = 2


def assign_folds(
    labels: np.ndarray, groups: np.ndarray, split: np.ndarray, folds: int, seed: int = 0
) -> np.ndarray:
    """Fold index (int8, 0..folds-1) of every train and validation row; ``NOT_IN_A_FOLD`` for test rows.

    Raises ``FractureTuneError`` when a class has fewer independent groups than ``folds``.
    """
    labels, groups, split = np.asarray(labels), np.asarray(groups), np.asarray(split)
    if not labels.shape == groups.shape == split.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape}, groups {groups.shape}, split {split.shape}: need equal 1-D")
    if folds < MIN_FOLDS:
        raise FractureTuneError(f"evaluation.folds must be >= {MIN_FOLDS} (or 0 for no folds), got {folds}")
    pooled = np.flatnonzero(split != SPLIT_CODES["test"])
    row_group, counts, classes = group_class_counts(labels[pooled], groups[pooled])
    for column, label in enumerate(classes):
        available = int(np.count_nonzero(counts[:, column]))
        if available < folds:
            raise FractureTuneError(
                f"class {CLASS_NAMES[int(label)]!r} has {available} independent image group(s) in "
                f"train+validation, too few for {folds} folds (each fold needs one)",
                hint=f"use evaluation.folds <= {available}, or 0 for the validation split alone",
            )
    assignment = np.full(labels.shape, NOT_IN_A_FOLD, dtype=np.int8)
    assignment[pooled] = assign_groups(row_group, counts, np.full(folds, 1.0 / folds), seed)
    return assignment


def fold_view(data: DatasetArrays, folds: np.ndarray, fold: int) -> DatasetArrays:
    """``data`` with fold ``fold`` as its validation split and the other folds as its training split.

    Test rows keep their split; the arrays are shared, not copied.
    """
    if folds.shape != data.split.shape:
        raise ValueError(f"folds {folds.shape} and the dataset's split {data.split.shape} differ in length")
    split = np.where(folds == fold, SPLIT_CODES["val"], SPLIT_CODES["train"]).astype(np.int8)
    split[folds == NOT_IN_A_FOLD] = SPLIT_CODES["test"]
    return dataclasses.replace(data, split=split)
