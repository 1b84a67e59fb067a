"""The arrays every trial reads: a user notices if a split's rows come back wrong or out of order (a trial
would train on validation images) or if a misspelt split name silently selects nothing."""

from __future__ import annotations

import numpy as np
import pytest

from fracture_tune.data.dataset import SPLIT_CODES, DatasetArrays, PreparedDataset


def _arrays(split: list[int], size: int = 3) -> DatasetArrays:
    count = len(split)
    return DatasetArrays(
        images=np.zeros((count, size, size), dtype=np.uint8),
        labels=np.zeros(count, dtype=np.int64),
        split=np.array(split, dtype=np.int8),
        split_hash="h",
    )


def test_indices_return_each_splits_rows_in_order_and_cover_every_row() -> None:
    arrays = _arrays([2, 0, 1, 0, 2, 0])

    train, val, test = (arrays.indices(name) for name in ("train", "val", "test"))

    np.testing.assert_array_equal(train, [1, 3, 5])
    np.testing.assert_array_equal(val, [2])
    np.testing.assert_array_equal(test, [0, 4])
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(6))


def test_unknown_split_name_is_an_error_that_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="validation") as raised:
        _arrays([0, 1]).indices("validation")
    assert "train" in str(raised.value)


def test_image_size_and_split_hash_come_from_the_arrays() -> None:
    arrays = _arrays([SPLIT_CODES["val"]], size=7)
    prepared = PreparedDataset(
        root="r", key="k", arrays=arrays, groups=np.zeros(1), source_paths=["a"], source_sha256=["s"]
    )

    assert arrays.image_size == 7
    assert prepared.split_hash == "h"
    assert prepared.params == {}
