"""The synthetic radiograph generator: real files, mixed modes, deterministic, and preparable."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fracture_tune.data.prepare import prepare_dataset
from fracture_tune.data.synth import generate_synthetic_dataset
from fracture_tune.data.synth_draw import draw_radiograph
from fracture_tune.errors import FractureTuneError

N = 80


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("synth_*"))
    }


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("synth") / "set", n=N, seed=0, size=64)


def test_writes_balanced_class_folders_of_real_images_in_mixed_modes(synthetic: Path) -> None:
    fractured = sorted((synthetic / "Fractured").iterdir())
    normal = sorted((synthetic / "Non_fractured").iterdir())
    assert len(fractured) == len(normal) == N // 2
    modes = Counter()
    sizes = set()
    for path in fractured + normal:
        with Image.open(path) as image:
            modes[(image.mode, image.format)] += 1
            sizes.add(image.size)
    assert {("L", "PNG"), ("L", "JPEG"), ("RGB", "JPEG"), ("I;16", "PNG")} <= set(modes)
    assert len(sizes) > 10  # sizes and aspect ratios vary


def test_same_seed_same_bytes_other_seed_other_bytes(synthetic: Path, tmp_path: Path) -> None:
    again = generate_synthetic_dataset(tmp_path / "again", n=N, seed=0, size=64)
    assert _digests(again) == _digests(synthetic)
    other = generate_synthetic_dataset(tmp_path / "other", n=N, seed=1, size=64)
    assert set(_digests(other).values()).isdisjoint(_digests(synthetic).values())


def test_fractured_images_differ_from_intact_ones_of_the_same_draw() -> None:
    # The break changes the picture; everything else (pose, exposure) stays comparable in range.
    for index in range(6):
        image = draw_radiograph(np.random.default_rng([3, index]), 96, 80, fractured=index % 2 == 1)
        assert image.shape == (96, 80) and 0.0 <= image.min() and image.max() <= 1.0
        assert image.std() > 0.05  # a bone and tissue are visible, not a flat field


def test_prepares_without_rejections(synthetic: Path, tmp_path: Path) -> None:
    result = prepare_dataset(synthetic, cache_root=tmp_path / "cache", image_size=32, workers=1, strict=True)
    assert result.report.prepared == N
    assert result.report.class_counts == {"non_fractured": N // 2, "fractured": N // 2}
    assert [item["path"] for item in result.report.ignored] == [".synth.json"]


def test_regenerating_the_same_set_is_a_no_op_and_other_files_are_protected(
    synthetic: Path, tmp_path: Path
) -> None:
    before = _digests(synthetic)
    assert generate_synthetic_dataset(synthetic, n=N, seed=0, size=64) == synthetic
    assert _digests(synthetic) == before
    with pytest.raises(FractureTuneError, match="not empty"):
        generate_synthetic_dataset(synthetic, n=N, seed=5, size=64)
    with pytest.raises(FractureTuneError, match="at least 2"):
        generate_synthetic_dataset(tmp_path / "tiny", n=1)
