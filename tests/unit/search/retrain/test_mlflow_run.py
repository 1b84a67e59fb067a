"""Logging the classifier: the pyfunc folder's layout and hashes, a GPU-visible machine, and telling a model
trained on generated images apart.

On a machine with a GPU MLflow validates the input example on the GPU by default; the H100 retrain of the
earlier pt2 model warned "Failed to validate serving input example ... can't be loaded on 'cuda' device".
The pyfunc scores on the CPU wherever it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fracture_tune.classifier.package import (
    METADATA_FILE,
    WEIGHTS_FILE,
    classifier_metadata,
    sha256_of_file,
    sha256_of_folder,
)
from fracture_tune.search.retrain.mlflow_run import log_classifier, png_bytes, trained_on_synthetic
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import build_model


def test_logged_folder_is_the_pyfunc_with_our_two_files_and_is_checked_on_cpu_with_a_gpu_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_DEFAULT_PREDICTION_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what MLflow's loader asks
    model = build_model("tiny_cnn", input_size=32)
    metadata = classifier_metadata(
        TrainConfig.from_flat({"model": "tiny_cnn"}),
        image_size=32,
        threshold=0.5,
        class_names=("negative", "positive"),
    )
    example = png_bytes(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))
    run_id = mlflow.MlflowClient().create_run(experiment_id="0").info.run_id
    mlflow_logger = logging.getLogger("mlflow")  # MLflow's logger does not propagate to the root
    mlflow_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            logged = log_classifier(
                run_id=run_id,
                model=model,
                example_image=example,
                metadata=metadata,
                local_dir=tmp_path / "model",
            )
    finally:
        mlflow_logger.removeHandler(caplog.handler)
    messages = [record.getMessage() for record in caplog.records]
    assert not [message for message in messages if "Failed to validate serving input example" in message]
    assert not [message for message in messages if "CloudPickle" in message]  # models from code: no pickle
    folder = Path(logged.local_dir)
    files = {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}
    assert {f"artifacts/{METADATA_FILE}", f"artifacts/{WEIGHTS_FILE}", "pyfunc_entry.py", "MLmodel"} <= files
    assert not [name for name in files if name.endswith((".pkl", ".pt2"))]
    assert logged.weights_sha256 == sha256_of_file(folder / "artifacts" / WEIGHTS_FILE)
    assert logged.model_sha256 == sha256_of_folder(folder)
    requirements = (folder / "requirements.txt").read_text().splitlines()
    assert "fracture-tune==0.1.0" in requirements and any(line.startswith("torch==") for line in requirements)


def test_a_dataset_prepared_from_generated_images_is_known_as_synthetic(tmp_path: Path) -> None:
    """``data synth``'s folder (the demo's) is told apart from real images by what prepare recorded."""
    from image_factory import make_class_tree

    from fracture_tune.data.prepare import prepare_dataset
    from fracture_tune.data.synth import generate_synthetic_dataset

    generated = generate_synthetic_dataset(tmp_path / "synth", n=20, size=32)
    real = make_class_tree(tmp_path / "xrays", {"Fractured": 10, "Non_fractured": 10})
    cache_root = tmp_path / "datasets"
    synthetic_cache = prepare_dataset(generated, cache_root=cache_root, image_size=16, workers=1).cache_dir
    real_cache = prepare_dataset(real, cache_root=cache_root, image_size=16, workers=1).cache_dir
    assert trained_on_synthetic(synthetic_cache) and not trained_on_synthetic(real_cache)
    assert not trained_on_synthetic(tmp_path / "no-such-cache")
