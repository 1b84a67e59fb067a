"""Prepare the real fracatlas set end to end: counts, duplicate groups kept together, balance, cache hit."""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from fracture_tune.data.prepare import prepare_dataset


@pytest.mark.integration
def test_prepare_fracatlas(fracatlas_dir: Path, tmp_path: Path) -> None:
    started = time.perf_counter()
    result = prepare_dataset(fracatlas_dir, cache_root=tmp_path / "datasets", workers=2)
    cold_seconds = time.perf_counter() - started
    dataset, report = result.dataset, result.report
    assert not result.cache_hit
    assert report.prepared == 1437 and report.rejected == [] and report.conflicts == []
    assert dataset.arrays.images.shape == (1437, 128, 128)

    split_of = dict(zip(dataset.source_paths, dataset.arrays.split.tolist(), strict=True))
    expected_groups: dict[str, list[str]] = defaultdict(list)
    with (fracatlas_dir / "DUPLICATES.csv").open() as handle:
        for row in csv.DictReader(handle):
            expected_groups[row["group"]].append(row["relative_path"])
    assert len(expected_groups) == 14
    for paths in expected_groups.values():
        assert len({split_of[path] for path in paths}) == 1, paths
    assert sorted(map(sorted, report.duplicate_groups)) == sorted(map(sorted, expected_groups.values()))

    labels, split = dataset.arrays.labels, dataset.arrays.split
    overall = labels.mean()
    for code in range(3):
        assert abs(labels[split == code].mean() - overall) <= 0.02
    for code, fraction in enumerate((0.70, 0.15, 0.15)):
        assert abs(np.mean(split == code) - fraction) <= 0.02

    started = time.perf_counter()
    again = prepare_dataset(fracatlas_dir, cache_root=tmp_path / "datasets", workers=2)
    warm_seconds = time.perf_counter() - started
    assert again.cache_hit and again.dataset.split_hash == dataset.split_hash
    assert cold_seconds < 60, f"cold prepare took {cold_seconds:.1f} s on this machine"
    assert warm_seconds < 5, f"cache hit took {warm_seconds:.1f} s"
