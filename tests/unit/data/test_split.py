"""assign_splits: grouped, stratified, seeded — and a clear error when a class is too small."""

from __future__ import annotations

import numpy as np
import pytest

from fracture_tune.data.split import assign_splits, split_hash
from fracture_tune.errors import FractureTuneError


def _grouped_labels(n_groups: int, positive_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Groups of 1–4 rows, each group one class (like duplicates), about positive_share positive."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([1, 1, 1, 2, 3, 4], size=n_groups)
    group_labels = (rng.random(n_groups) < positive_share).astype(np.int64)
    groups = np.repeat(np.arange(n_groups), sizes)
    return group_labels[groups], groups


def test_no_group_spans_two_splits() -> None:
    labels, groups = _grouped_labels(400, 0.4, seed=1)
    split = assign_splits(labels, groups, seed=7)
    for group in np.unique(groups):
        assert len(np.unique(split[groups == group])) == 1


@pytest.mark.parametrize("positive_share", [0.5, 0.2])
def test_every_split_keeps_the_class_balance(positive_share: float) -> None:
    labels, groups = _grouped_labels(800, positive_share, seed=2)
    split = assign_splits(labels, groups, val_fraction=0.15, test_fraction=0.15, seed=0)
    overall = labels.mean()
    for code, fraction in enumerate((0.7, 0.15, 0.15)):
        rows = split == code
        assert abs(rows.mean() - fraction) < 0.02
        assert abs(labels[rows].mean() - overall) < 0.02


def test_same_seed_same_split_and_other_seed_other_split() -> None:
    labels, groups = _grouped_labels(300, 0.5, seed=3)
    first = assign_splits(labels, groups, seed=11)
    assert np.array_equal(first, assign_splits(labels, groups, seed=11))
    assert not np.array_equal(first, assign_splits(labels, groups, seed=12))
    assert first.dtype == np.int8


def test_groups_mixing_classes_stay_together() -> None:
    # Patients (CSV group column) can have images of both classes.
    labels = np.array([0, 1] * 60)
    groups = np.repeat(np.arange(40), 3)
    split = assign_splits(labels, groups, seed=0)
    for group in range(40):
        assert len(np.unique(split[groups == group])) == 1
    assert set(np.unique(split).tolist()) == {0, 1, 2}


def test_tiny_class_every_split_gets_one_group() -> None:
    labels = np.array([0] * 20 + [1] * 3)
    split = assign_splits(labels, np.arange(23), seed=5)
    assert sorted(split[labels == 1].tolist()) == [0, 1, 2]


def test_too_few_groups_for_three_splits_is_a_clear_error() -> None:
    labels = np.array([0] * 10 + [1] * 4)
    groups = np.array(list(range(10)) + [100, 100, 101, 101])  # 4 positive images but only 2 groups
    with pytest.raises(FractureTuneError, match="class 1 has 2 independent image group") as raised:
        assign_splits(labels, groups, seed=0)
    assert "--test 0" in (raised.value.hint or "")
    split = assign_splits(labels, groups, test_fraction=0.0, seed=0)
    assert 2 not in split
    named = {0: "class 'non_fractured' (folder 'normal')", 1: "class 'fractured' (folder 'Broken')"}
    with pytest.raises(FractureTuneError, match=r"^class 'fractured' \(folder 'Broken'\) has 2 independent"):
        assign_splits(labels, groups, seed=0, class_names=named)


@pytest.mark.parametrize(("val", "test"), [(0.6, 0.5), (-0.1, 0.1), (0.1, 1.0)])
def test_bad_fractions_are_refused(val: float, test: float) -> None:
    with pytest.raises(FractureTuneError):
        assign_splits(np.array([0, 1] * 10), np.arange(20), val_fraction=val, test_fraction=test)


def test_split_hash_changes_when_any_row_moves() -> None:
    keys = [f"img{i}.png" for i in range(10)]
    split = np.array([0] * 6 + [1] * 2 + [2] * 2, dtype=np.int8)
    moved = split.copy()
    moved[0] = 1
    assert split_hash(keys, split) == split_hash(list(keys), split.copy())
    assert split_hash(keys, split) != split_hash(keys, moved)
