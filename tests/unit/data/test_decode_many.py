"""Decoding a whole folder: a user notices if outcomes come back in another order than the files (labels
would be attached to the wrong images), if one bad file stops the rest, or if the multi-process path
decodes differently from the single-process one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fracture_tune.data import decode_many
from fracture_tune.data.decode_many import decode_files


def _write_images(folder: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"img_{index:03d}.png"
        Image.fromarray(np.full((10, 12), index * 3 % 256, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_outcomes_follow_file_order_and_bad_files_become_reasons(tmp_path: Path) -> None:
    good = _write_images(tmp_path, 3)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")

    outcomes = decode_files([good[2], broken, good[0]], image_size=8, workers=1)

    assert isinstance(outcomes[1], str) and outcomes[1]
    assert outcomes[0].shape == (8, 8) and outcomes[0].dtype == np.uint8
    assert int(outcomes[0][4, 4]) == 6
    assert int(outcomes[2][4, 4]) == 0


def test_files_over_the_pixel_limit_are_rejected_not_decoded(tmp_path: Path) -> None:
    (path,) = _write_images(tmp_path, 1)

    (outcome,) = decode_files([path], image_size=8, workers=1, max_pixels=100)

    assert isinstance(outcome, str)


def test_process_pool_gives_the_same_outcomes_as_one_process(tmp_path: Path) -> None:
    paths = _write_images(tmp_path, decode_many.MIN_FILES_FOR_POOL)

    serial = decode_files(paths, image_size=8, workers=1)
    pooled = decode_files(paths, image_size=8, workers=2)

    assert len(pooled) == len(paths)
    for one, other in zip(serial, pooled, strict=True):
        np.testing.assert_array_equal(one, other)
