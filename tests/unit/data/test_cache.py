"""The dataset cache on disk: a user notices if two different datasets share a key (a stale cache is
reused), if a half-written folder is taken for a dataset, or if a written table loads back with other
pixels, labels or splits than were written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fracture_tune.data import cache


def _write_small_cache(folder: Path, images: np.ndarray, labels: np.ndarray, split: np.ndarray) -> None:
    count = len(images)
    cache.write_table(
        folder / cache.DATA_FILE,
        images,
        {
            "label": labels,
            "group": np.arange(count),
            "split": split,
            "source_path": [f"img_{row}.png" for row in range(count)],
            "sha256": [f"{row:064x}" for row in range(count)],
        },
    )
    meta = {
        "format_version": cache.FORMAT_VERSION,
        "image_size": images.shape[-1],
        "class_names": ["intact", "broken"],
        "key": folder.name,
        "split_hash": "abc",
        "params": {"image_size": images.shape[-1]},
    }
    cache.write_json(folder / cache.META_FILE, meta)


def test_written_table_loads_back_identical_and_read_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 4), dtype=np.uint8)
    labels = np.array([0, 1, 1, 0, 1])
    split = np.array([0, 0, 1, 2, 0])
    folder = tmp_path / "k1"
    folder.mkdir()
    _write_small_cache(folder, images, labels, split)

    loaded = cache.load_prepared(folder)

    np.testing.assert_array_equal(loaded.arrays.images, images)
    np.testing.assert_array_equal(loaded.arrays.labels, labels)
    np.testing.assert_array_equal(loaded.arrays.indices("train"), [0, 1, 4])
    assert loaded.arrays.class_names == ("intact", "broken")
    assert loaded.source_paths[3] == "img_3.png"
    with pytest.raises(ValueError):
        loaded.arrays.images[0, 0, 0] = 1


def test_key_ignores_entry_order_but_not_content_or_parameters() -> None:
    entries = [("a.png", "h1", 0, None), ("b.png", "h2", 1, "g")]
    key = cache.dataset_key(entries, {"image_size": 64})

    assert cache.dataset_key(list(reversed(entries)), {"image_size": 64}) == key
    assert cache.dataset_key([("a.png", "h1", 1, None), entries[1]], {"image_size": 64}) != key
    assert cache.dataset_key(entries, {"image_size": 128}) != key
    assert len(key) == cache.KEY_LENGTH


def test_file_hash_changes_with_bytes_and_is_none_for_unreadable(tmp_path: Path) -> None:
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"one")
    second.write_bytes(b"two")

    assert cache.file_sha256(first) != cache.file_sha256(second)
    assert cache.file_sha256(first) == cache.file_sha256(first)
    assert cache.file_sha256(tmp_path / "missing.bin") is None


def test_publish_keeps_nothing_when_the_writer_forgets_the_marker(tmp_path: Path) -> None:
    def writes_data_only(folder: Path) -> None:
        (folder / cache.DATA_FILE).write_bytes(b"x")

    with pytest.raises(RuntimeError, match=cache.META_FILE):
        cache.publish_atomically(tmp_path, "abc", writes_data_only)

    assert list(tmp_path.iterdir()) == []
    assert cache.prepared_datasets(tmp_path) == []


def test_only_published_folders_count_as_prepared_datasets(tmp_path: Path) -> None:
    published = cache.publish_atomically(
        tmp_path, "key1", lambda folder: cache.write_json(folder / cache.META_FILE, {})
    )
    hidden = tmp_path / ".key2.tmp-xyz"
    hidden.mkdir()
    cache.write_json(hidden / cache.META_FILE, {})
    (tmp_path / "incomplete").mkdir()

    assert cache.prepared_datasets(tmp_path) == [published]
    assert cache.prepared_datasets(tmp_path / "no_such_root") == []
