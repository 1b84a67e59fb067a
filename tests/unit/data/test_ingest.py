"""Turning scanned files into the dataset's arrays: a user notices if an image is paired with another
file's label or path, if one unreadable file is silently dropped (it must be in the report), if exact
duplicates land in different splits (leakage), or if the split record disagrees with the arrays."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fracture_tune.data.cache import file_sha256
from fracture_tune.data.decode import DEFAULT_MAX_PIXELS, decode_image
from fracture_tune.data.ingest import BuiltDataset, build_dataset
from fracture_tune.data.sources import ScanResult, scan_source
from fracture_tune.data.synth import POSITIVE_FOLDER, generate_synthetic_dataset

PARAMS = {"image_size": 32, "max_pixels": DEFAULT_MAX_PIXELS, "val_fraction": 0.25, "test_fraction": 0.25}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("synth") / "images", n=16, seed=0, size=64)


def _build(scan: ScanResult, seed: int = 0) -> BuiltDataset:
    hashes = [file_sha256(item.path) for item in scan.files]
    return build_dataset(scan, hashes, {**PARAMS, "seed": seed}, workers=1)


def test_each_row_keeps_its_own_pixels_label_and_path(source: Path) -> None:
    scan = scan_source(source)
    built = _build(scan)

    assert built.report.prepared == len(scan.files) == len(built.images)
    by_path = {item.relative_path: item for item in scan.files}
    for row, path in enumerate(built.columns["source_path"]):
        item = by_path[path]
        assert built.columns["label"][row] == item.label
        np.testing.assert_array_equal(built.images[row], decode_image(item.path, 32))
    assert [r["path"] for r in built.split_record["rows"]] == built.columns["source_path"]
    assert sum(sum(c.values()) for c in built.report.split_counts.values()) == len(built.images)


def test_unreadable_file_is_reported_and_the_rest_still_built(source: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(source, tmp_path / "copy")
    (copy / POSITIVE_FOLDER / "broken.png").write_bytes(b"not an image")
    scan = scan_source(copy)

    built = _build(scan)

    assert [item["path"] for item in built.report.rejected] == [f"{POSITIVE_FOLDER}/broken.png"]
    assert built.report.prepared == len(scan.files) - 1
    assert f"{POSITIVE_FOLDER}/broken.png" not in built.columns["source_path"]


def test_exact_duplicates_share_a_group_and_a_split(source: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(source, tmp_path / "copy")
    original = sorted((copy / POSITIVE_FOLDER).iterdir())[0]
    shutil.copy(original, original.with_name("again" + original.suffix))

    built = _build(scan_source(copy))

    rows = [
        row
        for row, path in enumerate(built.columns["source_path"])
        if Path(path).stem in {original.stem, "again"}
    ]
    assert len(rows) == 2
    assert built.columns["group"][rows[0]] == built.columns["group"][rows[1]]
    assert built.columns["split"][rows[0]] == built.columns["split"][rows[1]]
    assert len(built.report.duplicate_groups) == 1


def test_split_hash_is_stable_for_the_same_inputs_and_follows_the_seed(source: Path) -> None:
    scan = scan_source(source)
    first, again, reseeded = _build(scan), _build(scan), _build(scan, seed=1)

    assert first.split_hash == again.split_hash == first.split_record["split_hash"]
    assert not np.array_equal(first.columns["split"], reseeded.columns["split"])
    assert reseeded.split_hash != first.split_hash
