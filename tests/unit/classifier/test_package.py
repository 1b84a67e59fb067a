"""The model package's two files are found in either layout; the folder hash covers what MLflow logged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fracture_tune.classifier.package import (
    METADATA_FILE,
    WEIGHTS_FILE,
    classifier_metadata,
    find_package,
    package_file,
    read_package,
    sha256_of_folder,
    write_package_files,
)
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import build_model


def _package(folder: Path, subfolder: str) -> Path:
    torch.manual_seed(0)
    model = build_model("tiny_cnn", input_size=16, width=3).eval()
    config = TrainConfig.from_flat({"model": "tiny_cnn", "width": 3})
    metadata = classifier_metadata(config, image_size=16, threshold=0.3, class_names=("neg", "pos"))
    write_package_files(folder / subfolder, model, metadata)
    return folder


@pytest.mark.parametrize("subfolder", ["artifacts", "extra_files"], ids=["pyfunc", "pytorch-flavour"])
def test_both_layouts_are_found_and_read(tmp_path: Path, subfolder: str) -> None:
    """``artifacts/``: the pyfunc model logged now; ``extra_files/``: models logged before it."""
    folder = _package(tmp_path / "retrain" / "model", subfolder)
    assert find_package(tmp_path) == folder and find_package(tmp_path / "retrain") == folder
    assert package_file(folder, WEIGHTS_FILE) == folder / subfolder / WEIGHTS_FILE
    model, metadata = read_package(folder)
    assert metadata["threshold"] == 0.3 and not model.training
    assert find_package(tmp_path / "retrain" / "model" / subfolder) is None


def test_folder_hash_covers_every_logged_file_but_not_the_registry_download_note(tmp_path: Path) -> None:
    folder = _package(tmp_path / "model", "artifacts")
    (folder / "MLmodel").write_text("flavors: {}\n")
    before = sha256_of_folder(folder)
    # MLflow writes this when the folder is downloaded from models:/NAME/VERSION; it was never logged.
    (folder / "registered_model_meta").write_text(json.dumps({"model_name": "m", "model_version": "1"}))
    assert sha256_of_folder(folder) == before
    for changed in (folder / "MLmodel", folder / "artifacts" / METADATA_FILE):
        original = changed.read_bytes()
        changed.write_bytes(original + b" ")
        assert sha256_of_folder(folder) != before, changed.name
        changed.write_bytes(original)
    (folder / "artifacts" / WEIGHTS_FILE).rename(folder / "artifacts" / "weights.bak")  # same bytes, renamed
    assert sha256_of_folder(folder) != before
