"""Stratified, grouped, seeded train/val/test assignment: a pure function of arrays.

Rows that share a group (exact duplicates, a patient from a CSV's group column) always land in the same
split, so nothing leaks between training and evaluation. Within that constraint each split's class
balance follows the whole set's: groups are visited largest first (seeded random order among equals)
and each goes to the split whose per-class targets it fills best.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from fracture_tune.data.dataset import SPLIT_NAMES
from fracture_tune.errors import FractureTuneError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES_BY_CODE: dict[int, str] = dict(enumerate(SPLIT_NAMES))


def assign_splits(
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    class_names: Mapping[int, str] | None = None,
) -> np.ndarray:
    """Split codes (int8: 0 train, 1 val, 2 test) for each row.

    ``labels``: int [N] class per row (0/1). ``groups``: [N] any hashable group id per row.
    ``class_names``: how errors name each label (e.g. ``{1: "class 'fractured' (folder 'Broken')"}``).
    Raises :class:`FractureTuneError` when a class has too few groups to appear in every non-empty split.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape != groups.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and groups {groups.shape} must be equal 1-D shapes")
    fractions = _split_fractions(val_fraction, test_fraction)
    row_group, counts, classes = group_class_counts(labels, groups)
    _check_enough_groups(counts, classes, fractions, class_names or {})
    return assign_groups(row_group, counts, fractions, seed).astype(np.int8)


def group_class_counts(labels: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group index of each row, counts[g, c] = rows of class c in group g, the sorted classes)."""
    group_ids, row_group = np.unique(groups, return_inverse=True)
    classes = np.unique(labels)
    class_index = np.searchsorted(classes, labels)
    counts = np.zeros((len(group_ids), len(classes)), dtype=np.int64)
    np.add.at(counts, (row_group, class_index), 1)
    return row_group, counts, classes


def assign_groups(row_group: np.ndarray, counts: np.ndarray, fractions: np.ndarray, seed: int) -> np.ndarray:
    """Part index per row: whole groups, each part's class mix following ``fractions`` of every class."""
    targets = np.asarray(fractions, dtype=np.float64)[:, None] * counts.sum(axis=0)[None, :]
    group_part = _greedy_assign(counts, targets, np.random.default_rng(seed))
    return group_part[row_group]


def _split_fractions(val_fraction: float, test_fraction: float) -> np.ndarray:
    for name, value in (("val", val_fraction), ("test", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise FractureTuneError(f"--{name} fraction must be in [0, 1), got {value}")
    train_fraction = 1.0 - val_fraction - test_fraction
    if train_fraction <= 0.0:
        raise FractureTuneError(
            f"--val {val_fraction} plus --test {test_fraction} leaves no training data",
            hint="keep val + test below 1 (the defaults are 0.15 each)",
        )
    return np.array([train_fraction, val_fraction, test_fraction])


def _check_enough_groups(
    counts: np.ndarray, classes: np.ndarray, fractions: np.ndarray, class_names: Mapping[int, str]
) -> None:
    needed = int(np.count_nonzero(fractions))
    for column, label in enumerate(classes):
        available = int(np.count_nonzero(counts[:, column]))
        if available < needed:
            name = class_names.get(int(label), f"class {int(label)}")
            raise FractureTuneError(
                f"{name} has {available} independent image group(s) but {needed} splits need "
                "at least one each (duplicates and CSV groups count once)",
                hint="add images of that class, or set --val 0 / --test 0 to use fewer splits",
            )


def _greedy_assign(counts: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n_splits = targets.shape[0]
    group_split = np.full(counts.shape[0], -1, dtype=np.int64)
    filled = np.zeros_like(targets)
    active = [split for split in range(n_splits) if targets[split].sum() > 0]
    order = _visit_order(counts, rng)
    # First give every active split one group of each class, so small classes reach every split.
    for column in range(counts.shape[1]):
        candidates = [g for g in order if counts[g, column] > 0 and group_split[g] < 0]
        for split, group in zip(active[::-1], candidates, strict=False):
            group_split[group] = split
            filled[split] += counts[group]
    totals = np.maximum(counts.sum(axis=0), 1)
    for group in order:
        if group_split[group] >= 0:
            continue
        # Deficit of each split, weighted by the group's class mix and normalised per class.
        deficit = ((targets - filled) * counts[group][None, :] / totals[None, :]).sum(axis=1)
        deficit[[split for split in range(n_splits) if split not in active]] = -np.inf
        best = int(np.argmax(deficit))
        group_split[group] = best
        filled[best] += counts[group]
    return group_split


def _visit_order(counts: np.ndarray, rng: np.random.Generator) -> list[int]:
    shuffled = rng.permutation(counts.shape[0])
    sizes = counts.sum(axis=1)[shuffled]
    # Largest groups first (they are the hard ones to place); random order among equal sizes.
    return [int(g) for g in shuffled[np.argsort(-sizes, kind="stable")]]


def split_hash(keys: Sequence[str], split: np.ndarray) -> str:
    """A fingerprint of which row went where: sha256 over "row key <TAB> split code" lines in row order."""
    digest = hashlib.sha256()
    for key, code in zip(keys, np.asarray(split).tolist(), strict=True):
        digest.update(f"{key}\t{code}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()
