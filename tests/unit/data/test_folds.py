"""Grouped, stratified folds of train+validation: groups stay whole, the test split stays out."""

from __future__ import annotations

import numpy as np
import pytest

from fracture_tune.data.dataset import SPLIT_CODES, DatasetArrays
from fracture_tune.data.folds import NOT_IN_A_FOLD, assign_folds, fold_view
from fracture_tune.data.split import assign_splits
from fracture_tune.errors import FractureTuneError


def _dataset(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 rows in 380 groups (patients with 1-4 images), 30 % positive, split 70/15/15 by group."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, 380)
    groups = np.repeat(np.arange(sizes.size), sizes)[:600]
    group_label = (rng.random(sizes.size) < 0.3).astype(np.int64)
    labels = group_label[groups]
    split = assign_splits(labels, groups, seed=seed)
    return labels, groups, split


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_no_group_crosses_folds_and_the_test_split_is_in_none(folds: int) -> None:
    labels, groups, split = _dataset()
    assignment = assign_folds(labels, groups, split, folds, seed=1)
    test = split == SPLIT_CODES["test"]
    assert np.all(assignment[test] == NOT_IN_A_FOLD)
    assert set(assignment[~test].tolist()) == set(range(folds))
    for group in np.unique(groups[~test]):
        assert np.unique(assignment[groups == group]).size == 1, f"group {group} is in two folds"
    # Stratified: every fold's positive share within 5 points of the pool's.
    pool_share = labels[~test].mean()
    for fold in range(folds):
        in_fold = assignment == fold
        assert abs(labels[in_fold].mean() - pool_share) < 0.05
        assert abs(in_fold.sum() - (~test).sum() / folds) <= 0.1 * (~test).sum() / folds


def test_each_fold_view_trains_on_the_other_folds_and_keeps_the_test_split() -> None:
    labels, groups, split = _dataset()
    assignment = assign_folds(labels, groups, split, 3)
    images = np.zeros((labels.size, 8, 8), dtype=np.uint8)
    data = DatasetArrays(images=images, labels=labels, split=split)
    held_out = []
    for fold in range(3):
        view = fold_view(data, assignment, fold)
        assert np.array_equal(view.indices("test"), data.indices("test"))
        assert np.array_equal(view.indices("val"), np.flatnonzero(assignment == fold))
        assert not set(groups[view.indices("train")]) & set(groups[view.indices("val")])
        assert view.images is data.images  # a view, not a copy
        held_out.extend(view.indices("val").tolist())
    # Every train/validation image is held out exactly once.
    assert sorted(held_out) == sorted(np.flatnonzero(split != SPLIT_CODES["test"]).tolist())


def test_the_same_seed_gives_the_same_folds_and_another_seed_others() -> None:
    labels, groups, split = _dataset()
    first = assign_folds(labels, groups, split, 3, seed=0)
    assert np.array_equal(first, assign_folds(labels, groups, split, 3, seed=0))
    assert not np.array_equal(first, assign_folds(labels, groups, split, 3, seed=1))


def test_too_few_groups_of_a_class_for_the_folds_is_an_error_naming_the_class() -> None:
    labels = np.array([0] * 20 + [1] * 3)
    groups = np.arange(23)
    split = np.zeros(23, dtype=np.int8)
    with pytest.raises(
        FractureTuneError, match=r"class 'fractured' has 3 independent image group\(s\).*4 folds"
    ):
        assign_folds(labels, groups, split, 4)
    with pytest.raises(FractureTuneError, match="folds must be >= 2"):
        assign_folds(labels, groups, split, 1)
