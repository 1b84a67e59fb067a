"""prepare_dataset on small folders made in tmp_path: outcomes for bad inputs, cache key, atomicity."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from image_factory import (
    exif_rotated_jpeg,
    gradient,
    make_class_tree,
    png_header_only,
    truncated_jpeg,
    write_png,
)
from PIL import Image

from fracture_tune.data import cache
from fracture_tune.data.decode import decode_image
from fracture_tune.data.prepare import PrepareResult, load_prepared, prepare_dataset
from fracture_tune.errors import FractureTuneError

SIZE = 16
BALANCED = {"Fractured": 8, "Non_fractured": 8}


def _prepare(source: Path, root: Path, **kwargs: Any) -> PrepareResult:
    return prepare_dataset(source, cache_root=root, image_size=SIZE, workers=1, **kwargs)


def test_prepared_cache_loads_as_arrays_matching_the_files(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    result = _prepare(source, tmp_path / "cache")
    arrays = result.dataset.arrays
    assert arrays.images.shape == (16, SIZE, SIZE) and arrays.images.dtype == np.uint8
    assert arrays.labels.dtype == np.int64 and arrays.split.dtype == np.int8
    assert not arrays.images.flags.owndata and not arrays.images.flags.writeable  # a view on Arrow's buffer
    for row in (0, 9):
        path = source / result.dataset.source_paths[row]
        assert np.array_equal(arrays.images[row], decode_image(path, SIZE))
        assert arrays.labels[row] == (1 if path.parent.name == "Fractured" else 0)
    cache_dir = result.cache_dir
    assert {p.name for p in cache_dir.iterdir()} >= {
        "images.parquet",
        "split.json",
        "report.json",
        "report.txt",
        "meta.json",
    }
    split_record = json.loads((cache_dir / "split.json").read_text())
    assert split_record["dataset_key"] == cache_dir.name == arrays.dataset_key
    assert split_record["split_hash"] == arrays.split_hash
    assert len(split_record["rows"]) == 16 and len(split_record["rows"][0]["sha256"]) == 64


def test_second_prepare_is_a_cache_hit_and_key_is_stable(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    first = _prepare(source, tmp_path / "cache")
    second = prepare_dataset(source, cache_root=tmp_path / "cache", image_size=SIZE, workers=2, strict=True)
    assert not first.cache_hit and second.cache_hit
    assert first.dataset.key == second.dataset.key
    elsewhere = _prepare(source, tmp_path / "other-root")
    assert elsewhere.dataset.key == first.dataset.key
    assert elsewhere.dataset.split_hash == first.dataset.split_hash


def test_key_changes_with_bytes_and_parameters(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    root = tmp_path / "cache"
    key = _prepare(source, root).dataset.key
    assert _prepare(source, root, seed=1).dataset.key != key
    assert prepare_dataset(source, cache_root=root, image_size=SIZE * 2, workers=1).dataset.key != key
    write_png(source / "Fractured" / "img_000.png", gradient(SIZE, SIZE, seed=999))
    assert _prepare(source, root).dataset.key != key


def test_bad_files_are_reported_and_valid_ones_still_load(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    bad = source / "Fractured"
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "notes.jpg").write_text("not an image")
    truncated_jpeg(bad / "cut.jpg")
    png_header_only(bad / "bomb.png", 20000, 20000)
    (source / "Non_fractured" / ".DS_Store").write_bytes(b"\0\0")
    Image.fromarray(np.dstack([gradient(seed=50)] * 3 + [np.full((24, 32), 200, np.uint8)])).save(
        bad / "rgba.png"
    )
    Image.fromarray(gradient(seed=51).astype(np.uint16) * 257).save(bad / "deep.png")
    exif_rotated_jpeg(bad / "rotated.jpg")
    with open(os.fsencode(source / "Non_fractured") + b"/caf\xe9.png", "wb") as handle:
        Image.fromarray(gradient(seed=52)).save(handle, format="PNG")
    result = _prepare(source, tmp_path / "cache")
    report = result.report
    reasons = {item["path"]: item["reason"] for item in report.rejected}
    assert set(reasons) == {
        "Fractured/zero.jpg",
        "Fractured/notes.jpg",
        "Fractured/cut.jpg",
        "Fractured/bomb.png",
    }
    assert (
        "empty file" in reasons["Fractured/zero.jpg"]
        and "decompression bomb" in reasons["Fractured/bomb.png"]
    )
    assert (
        "truncated" in reasons["Fractured/cut.jpg"] and "not a recognised" in reasons["Fractured/notes.jpg"]
    )
    assert report.prepared == 16 + 4 and len(result.dataset.arrays.labels) == 20
    assert "Non_fractured/caf\\xe9.png" in result.dataset.source_paths
    assert {"path": "Non_fractured/.DS_Store", "reason": "hidden file"} in report.ignored
    text = (result.cache_dir / "report.txt").read_text()
    assert "Fractured/bomb.png: decompression bomb" in text


def test_strict_turns_any_rejection_into_an_error(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    (source / "Fractured" / "zero.jpg").write_bytes(b"")
    with pytest.raises(FractureTuneError, match=r"Fractured/zero.jpg: empty file"):
        _prepare(source, tmp_path / "cache", strict=True)
    assert not any((tmp_path / "cache").glob("*/meta.json"))
    _prepare(source, tmp_path / "cache")  # without --strict it prepares the rest...
    with pytest.raises(FractureTuneError, match="--strict"):
        _prepare(source, tmp_path / "cache", strict=True)  # ...and a strict cache hit still refuses


def test_same_pixels_under_two_labels_is_a_conflict_and_excluded(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    shutil.copy(source / "Fractured" / "img_000.png", source / "Non_fractured" / "same_as_fractured.png")
    write_png(
        source / "Fractured" / "copy_of_img_001.png",
        np.asarray(Image.open(source / "Fractured" / "img_001.png")),
    )
    result = _prepare(source, tmp_path / "cache")
    report = result.report
    assert [sorted(c["paths"]) for c in report.conflicts] == [
        ["Fractured/img_000.png", "Non_fractured/same_as_fractured.png"]
    ]
    paths = result.dataset.source_paths
    assert "Fractured/img_000.png" not in paths and len(paths) == 16
    assert report.duplicate_groups == [["Fractured/copy_of_img_001.png", "Fractured/img_001.png"]]
    rows = [paths.index(p) for p in report.duplicate_groups[0]]
    groups, split = result.dataset.groups, result.dataset.arrays.split
    assert groups[rows[0]] == groups[rows[1]] and split[rows[0]] == split[rows[1]]


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({"Fractured": 0, "Non_fractured": 6}, "no files for class 'fractured'.*'Fractured' is empty"),
        ({"Fractured": 6}, "no files for class 'non_fractured'"),
        ({"Fractured": 6, "Misc": 6}, "unknown class name.*'Misc'"),
    ],
    ids=["empty-class-folder", "single-class", "unknown-class-name"],
)
def test_folder_layout_errors(tmp_path: Path, layout: dict[str, int], message: str) -> None:
    source = make_class_tree(tmp_path / "src", layout)
    with pytest.raises(FractureTuneError, match=message) as raised:
        _prepare(source, tmp_path / "cache")
    assert raised.value.hint


def test_csv_manifest_with_groups_and_a_missing_file(tmp_path: Path) -> None:
    images = make_class_tree(tmp_path / "src" / "imgs", {"a": 10, "b": 10})
    lines = ["path,label,group"]
    for index in range(10):
        lines.append(f"imgs/a/img_{index:03d}.png,fractured,patient{index % 4}")
        lines.append(f"imgs/b/img_{index:03d}.png,normal,patient{index % 4}")
    lines.append("imgs/gone.png,normal,")
    manifest = images.parent / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    result = _prepare(manifest, tmp_path / "cache")
    assert result.report.rejected == [{"path": "imgs/gone.png", "reason": "file not found"}]
    dataset = result.dataset
    for patient in range(4):
        rows = [i for i, p in enumerate(dataset.source_paths) if int(p[-7:-4]) % 4 == patient]
        assert len(set(dataset.arrays.split[rows].tolist())) == 1  # a patient's images share a split
    (tmp_path / "bad.csv").write_text("file,class\nx.png,fractured\n")
    with pytest.raises(FractureTuneError, match="expected path,label"):
        _prepare(tmp_path / "bad.csv", tmp_path / "cache")


def test_load_without_marker_explains_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(FractureTuneError, match="not a prepared dataset") as raised:
        load_prepared(tmp_path / "half")
    assert "fracture-tune data prepare" in (raised.value.hint or "")


def test_crash_leftovers_are_never_taken_for_a_cache(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    key = _prepare(source, tmp_path / "probe").dataset.key
    root = tmp_path / "cache"
    stale = root / f".{key}.tmp-crashed"
    stale.mkdir(parents=True)
    (stale / "images.parquet").write_bytes(b"half written")
    (root / key).mkdir()  # a folder with the key's name but no meta.json
    with pytest.raises(FractureTuneError):
        load_prepared(root / key)
    result = _prepare(source, root)
    assert not result.cache_hit and (root / key / "meta.json").is_file()
    assert not stale.exists()


def test_failure_while_writing_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_class_tree(tmp_path / "src", BALANCED)
    real_write_json = cache.write_json

    def crash_on_marker(path: Path, payload: object) -> None:
        if path.name == cache.META_FILE:
            raise OSError("disk full")
        real_write_json(path, payload)

    monkeypatch.setattr(cache, "write_json", crash_on_marker)
    with pytest.raises(OSError, match="disk full"):
        _prepare(source, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    assert not _prepare(source, tmp_path / "cache").cache_hit


def _prepare_in_child(source: str, root: str, barrier: object, results: object) -> None:
    barrier.wait()
    result = prepare_dataset(source, cache_root=root, image_size=SIZE, workers=1)
    results.put((result.cache_hit, str(result.cache_dir)))


def test_concurrent_prepares_of_one_key_give_one_valid_cache(tmp_path: Path) -> None:
    source = make_class_tree(tmp_path / "src", {"Fractured": 30, "Non_fractured": 30})
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(
            target=_prepare_in_child, args=(str(source), str(tmp_path / "cache"), barrier, results)
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    assert sorted(hit for hit, _ in outcomes) == [False, True]  # one built it, the other reused it
    assert len({folder for _, folder in outcomes}) == 1
    entries = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(entries) == 2 and entries[1] == entries[0] + ".lock"  # the cache and its lock file, no temp
    assert len(load_prepared(outcomes[0][1]).arrays.labels) == 60


def test_preparing_a_prepared_source_with_other_settings_names_its_caches(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A search at another image size than `data prepare` used prepares afresh, and says why."""
    source = make_class_tree(tmp_path / "src", BALANCED)
    first = _prepare(source, tmp_path / "cache")
    other_source = make_class_tree(tmp_path / "other", BALANCED, seed=1)
    _prepare(other_source, tmp_path / "cache", seed=5)
    with caplog.at_level("WARNING", logger="fracture_tune.data.prepare"):
        prepare_dataset(source, cache_root=tmp_path / "cache", image_size=32, workers=1)
    [warning] = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert f"preparing {source.resolve()} afresh at image_size 32, val_fraction 0.15" in warning
    assert f"{first.cache_dir} (image_size {SIZE})" in warning
    assert "seed 5" not in warning  # the other folder's cache is not named
    assert "`fracture-tune data prepare SRC --config NAME`" in warning
    caplog.clear()
    with caplog.at_level("WARNING", logger="fracture_tune.data.prepare"):
        assert _prepare(source, tmp_path / "cache").cache_hit
    assert not caplog.records
