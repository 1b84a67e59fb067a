"""Exact duplicates and label conflicts, from per-image pixel hashes.

Duplicates are judged on the decoded pixels at cache resolution (after EXIF orientation, grayscale and
resize): JPEGs are decoded in draft mode, so the full-resolution pixels never exist. Files with equal
full-resolution pixels always have equal cache pixels (decoding is deterministic), so every exact
duplicate is found — on fracatlas exactly the 14 groups of its DUPLICATES.csv, including the files that
are pixel-identical with different JPEG bytes. Distinct images that only coincide after resizing are
grouped too, which errs on the side of no leakage. Duplicates may span classes: the same pixels filed
under two labels is a conflict, and all its files are excluded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DuplicateAnalysis:
    keep: np.ndarray  # bool [N]: False for rows excluded as label conflicts
    groups: np.ndarray  # int64 [N]: group id per row (excluded rows: -1), numbered by first row
    duplicate_sets: list[list[int]]  # rows with identical pixels (kept ones), 2+ each
    conflict_sets: list[list[int]]  # rows with identical pixels but different labels


def find_duplicates(
    pixel_hashes: Sequence[str], labels: Sequence[int], group_hints: Sequence[str | None]
) -> DuplicateAnalysis:
    """Group rows with identical pixels or the same CSV group (union of both), excluding label conflicts."""
    by_pixels: dict[str, list[int]] = defaultdict(list)
    for row, pixel_hash in enumerate(pixel_hashes):
        by_pixels[pixel_hash].append(row)
    keep = np.ones(len(pixel_hashes), dtype=bool)
    duplicate_sets: list[list[int]] = []
    conflict_sets: list[list[int]] = []
    for rows in by_pixels.values():
        if len({labels[row] for row in rows}) > 1:
            conflict_sets.append(rows)
            keep[rows] = False
        elif len(rows) > 1:
            duplicate_sets.append(rows)
    parent = list(range(len(pixel_hashes)))
    for rows in duplicate_sets:
        for row in rows[1:]:
            _union(parent, rows[0], row)
    first_with_hint: dict[str, int] = {}
    for row, hint in enumerate(group_hints):
        if hint is not None and keep[row]:
            _union(parent, first_with_hint.setdefault(hint, row), row)
    return DuplicateAnalysis(keep, _number_groups(parent, keep), duplicate_sets, conflict_sets)


def _find(parent: list[int], row: int) -> int:
    while parent[row] != row:
        parent[row] = parent[parent[row]]
        row = parent[row]
    return row


def _union(parent: list[int], first: int, second: int) -> None:
    root_first, root_second = _find(parent, first), _find(parent, second)
    if root_first != root_second:
        parent[max(root_first, root_second)] = min(root_first, root_second)


def _number_groups(parent: list[int], keep: np.ndarray) -> np.ndarray:
    numbers: dict[int, int] = {}
    groups = np.full(len(parent), -1, dtype=np.int64)
    for row in range(len(parent)):
        if keep[row]:
            groups[row] = numbers.setdefault(_find(parent, row), len(numbers))
    return groups
