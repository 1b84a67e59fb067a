"""The prepared dataset as trainables and the search see it: plain numpy arrays plus provenance.

This is the contract between the data layer (which writes the cache) and everything that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
SPLIT_CODES: dict[str, int] = {name: code for code, name in enumerate(SPLIT_NAMES)}


@dataclass(frozen=True)
class DatasetArrays:
    """What a trial needs, small enough to travel through Ray's object store.

    images: uint8 [N, H, W] grayscale pixels (may be read-only: copy before writing).
    labels: int64 [N]; 1 = positive class (fractured), 0 = negative.
    split:  int8 [N]; codes from ``SPLIT_CODES`` (0 train, 1 val, 2 test).
    """

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    class_names: tuple[str, str] = ("non_fractured", "fractured")
    dataset_key: str = ""
    split_hash: str = ""

    def indices(self, split_name: str) -> np.ndarray:
        """Row indices of one split ("train", "val" or "test"), ascending."""
        if split_name not in SPLIT_CODES:
            raise ValueError(f"unknown split {split_name!r}; expected one of {SPLIT_NAMES}")
        return np.flatnonzero(self.split == SPLIT_CODES[split_name])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])


@dataclass(frozen=True)
class PreparedDataset:
    """A prepared cache on disk, loaded: the arrays plus where every row came from."""

    root: str
    key: str
    arrays: DatasetArrays
    groups: np.ndarray
    source_paths: list[str]
    source_sha256: list[str]
    params: dict[str, object] = field(default_factory=dict)

    @property
    def split_hash(self) -> str:
        return self.arrays.split_hash
