"""`fracture-tune predict` through the real CLI entry point: what a user sees for paths that do not exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from image_factory import gradient, write_png

from fracture_tune.classifier.package import classifier_metadata, sha256_of_file, write_package_files
from fracture_tune.cli import main
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import build_model


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    """A tiny local model folder with retrain's record of its weights beside it."""
    config = TrainConfig.from_flat({"model": "tiny_cnn", "width": 3, "device": "cpu"})
    metadata = classifier_metadata(
        config, image_size=16, threshold=0.5, class_names=("non_fractured", "fractured"), split_hash="h"
    )
    folder = tmp_path / "model"
    _, weights = write_package_files(
        folder / "extra_files", build_model("tiny_cnn", input_size=16, width=3), metadata
    )
    (tmp_path / "report.json").write_text(json.dumps({"model": {"weights_sha256": sha256_of_file(weights)}}))
    return folder


def test_predict_on_a_missing_file_exits_2_naming_it(
    model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["predict", "scan.png", "--model", str(model_folder)]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: no such file or folder: 'scan.png'",
        f"hint: check the path (relative paths resolve from the current folder, {tmp_path}); pass image "
        "files (PNG, JPEG, TIFF, BMP) or folders of them",
    ]
    assert captured.out == ""  # no table that looks like a result


def test_a_pattern_the_shell_left_unmatched_is_named_as_one(
    model_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "/scans/*.jpg", "/scans/b.png", "--model", str(model_folder)]) == 2
    err = capsys.readouterr().err
    assert "error: none of the paths given exists: '/scans/*.jpg', '/scans/b.png'" in err
    assert "hint: the shell matched no file to the pattern" in err


def test_a_missing_file_among_images_is_a_row_of_the_table(
    model_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_png(tmp_path / "in" / "a.png", gradient(20, 20))
    assert main(["predict", str(image), str(tmp_path / "gone.png"), "--model", str(model_folder)]) == 0
    out = capsys.readouterr().out
    assert "missing   no such file" in out and "1 of 2 files predicted" in out
