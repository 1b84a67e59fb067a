"""An ensemble is one model package: loaded, checked, scored and explained like a single model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fracture_tune.classifier.package import (
    METADATA_FILE,
    WEIGHTS_FILE,
    build_ensemble,
    classifier_metadata,
    ensemble_members_metadata,
    model_inputs,
    sha256_of_file,
    write_package_files,
)
from fracture_tune.classifier.predict import load_classifier
from fracture_tune.cli import main
from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.engine import predict_proba
from fracture_tune.trainables.ensemble import ProbabilityEnsemble
from fracture_tune.trainables.models import build_model

IMAGE_SIZE = 48
# The best member first: its config is the package's top-level one.
CONFIGS: list[dict[str, Any]] = [
    {"model": "base_cnn", "input_size": 32, "device": "cpu"},
    {"model": "tunable_cnn", "c1": 4, "c2": 4, "c3": 4, "dropout": 0.5, "device": "cpu"},
]
LABELS = ["trial_a", "trial_b"]


def _members() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    models = []
    for config, bias in zip(CONFIGS, (1.0, -1.0), strict=True):
        train = TrainConfig.from_flat(config)
        model = build_model(train.model, input_size=train.input_size or IMAGE_SIZE, **train.model_kwargs)
        with torch.no_grad():  # the two members disagree, so their mean is neither one
            model.classifier[-1].bias.copy_(torch.tensor([bias, -bias]))
        models.append(model.eval())
    return models


def _metadata() -> dict[str, Any]:
    return classifier_metadata(
        TrainConfig.from_flat(CONFIGS[0]),
        image_size=IMAGE_SIZE,
        threshold=0.5,
        class_names=("non_fractured", "fractured"),
        members=ensemble_members_metadata(CONFIGS, LABELS, image_size=IMAGE_SIZE),
    )


def _ensemble_folder(root: Path) -> tuple[Path, ProbabilityEnsemble]:
    ensemble = build_ensemble(_members(), CONFIGS, IMAGE_SIZE)
    folder = root / "model"
    _, weights = write_package_files(folder / "artifacts", ensemble, _metadata())
    # retrain's record of the weights beside the model folder (load_classifier refuses a model without one)
    (root / "report.json").write_text(json.dumps({"model": {"weights_sha256": sha256_of_file(weights)}}))
    return folder, ensemble


def _images(count: int = 4, side: int = IMAGE_SIZE) -> np.ndarray:
    rng = np.random.default_rng(0)
    ramp = np.linspace(20, 220, side)[None, None, :] * rng.uniform(0.3, 1.0, (count, 1, 1))
    return np.clip(ramp + rng.normal(0, 30, (count, side, side)), 0, 255).astype(np.uint8)


def test_one_package_holds_every_member_under_one_weights_file(tmp_path: Path) -> None:
    folder, _ = _ensemble_folder(tmp_path)
    metadata = json.loads((folder / "artifacts" / METADATA_FILE).read_text())
    assert metadata["config"]["model"] == "base_cnn" and metadata["input_size"] == IMAGE_SIZE
    assert [(m["label"], m["input_size"], m["config"]["model"]) for m in metadata["members"]] == [
        ("trial_a", 32, "base_cnn"),
        ("trial_b", IMAGE_SIZE, "tunable_cnn"),
    ]
    state = torch.load(folder / "artifacts" / WEIGHTS_FILE, weights_only=True)
    assert {key.split(".")[1] for key in state} == {"0", "1"} and all(k.startswith("members.") for k in state)


def test_loaded_ensemble_scores_like_the_one_in_memory_and_like_its_members_averaged(tmp_path: Path) -> None:
    folder, ensemble = _ensemble_folder(tmp_path)
    classifier = load_classifier(folder)
    assert classifier.is_ensemble and [member["label"] for member in classifier.members] == LABELS
    assert isinstance(classifier.model, ProbabilityEnsemble) and not classifier.model.training
    images = _images()
    probabilities = classifier.predict_proba(images)
    with torch.no_grad():
        in_memory = torch.softmax(ensemble(model_inputs(images, IMAGE_SIZE)), 1)[:, 1].numpy()
    np.testing.assert_allclose(probabilities, in_memory, atol=1e-6)
    # Each member scored alone by the engine (its own resize, from uint8): only rounding to uint8 differs.
    alone = [predict_proba(model, images, config) for model, config in zip(_members(), CONFIGS, strict=True)]
    np.testing.assert_allclose(probabilities, np.mean(alone, axis=0), atol=2e-3)
    assert np.abs(alone[0] - alone[1]).min() > 0.1  # a mean, not either member
    frame = classifier.predict(images, threshold=float(np.median(probabilities)))
    assert (frame["status"] == "ok").all() and set(frame["label"]) == {"non_fractured", "fractured"}


def test_changed_ensemble_weights_are_refused(tmp_path: Path) -> None:
    folder, _ = _ensemble_folder(tmp_path)
    weights = folder / "artifacts" / WEIGHTS_FILE
    state = torch.load(weights, weights_only=True)
    state["members.1.classifier.5.bias"] += 1.0  # the second member's last layer
    torch.save(state, weights)
    with pytest.raises(FractureTuneError, match="differs from"):
        load_classifier(folder)


def test_cli_predict_with_explanations_and_export_take_an_ensemble_folder(tmp_path: Path) -> None:
    folder, _ = _ensemble_folder(tmp_path)
    scans = tmp_path / "scans"
    scans.mkdir()
    for index, pixels in enumerate(_images(3, side=64)):  # another size: resized like training images
        Image.fromarray(pixels).save(scans / f"scan{index}.png")
    argv = ["predict", str(scans), "--model", str(folder), "--out", str(tmp_path / "p.csv")]
    assert main([*argv, "--explain", str(tmp_path / "cams")]) == 0
    assert pd.read_csv(tmp_path / "p.csv")["probability"].between(0, 1).all()
    assert len(list((tmp_path / "cams").glob("*_gradcam.png"))) == 3
    assert main(["export", "--model", str(folder), "--out", str(tmp_path / "model.pt2")]) == 0
    sidecar = json.loads((tmp_path / "model.pt2.json").read_text())
    assert sidecar["members"] == [
        {"label": "trial_a", "input_size": 32},
        {"label": "trial_b", "input_size": IMAGE_SIZE},
    ]


def test_a_package_whose_metadata_does_not_describe_its_ensemble_is_not_written(tmp_path: Path) -> None:
    ensemble = build_ensemble(_members(), CONFIGS, IMAGE_SIZE)
    single = classifier_metadata(
        TrainConfig.from_flat(CONFIGS[0]), image_size=IMAGE_SIZE, threshold=0.5, class_names=("n", "p")
    )
    with pytest.raises(FractureTuneError, match="0 ensemble member"):
        write_package_files(tmp_path, ensemble, single)
    with pytest.raises(FractureTuneError, match="a single SeedCNN"):
        write_package_files(tmp_path, _members()[0], _metadata())


def test_a_logged_ensemble_serves_through_mlflow_like_predict(tmp_path: Path) -> None:
    import mlflow
    import mlflow.pyfunc

    from fracture_tune.search.retrain.mlflow_run import log_classifier, png_bytes

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = mlflow.MlflowClient().create_run(experiment_id="0").info.run_id
    ensemble = build_ensemble(_members(), CONFIGS, IMAGE_SIZE)
    images = _images(3)
    logged = log_classifier(
        run_id=run_id,
        model=ensemble,
        example_image=png_bytes(images[0]),
        metadata=_metadata(),
        local_dir=tmp_path / "model",
    )
    rows = [png_bytes(pixels) for pixels in images]
    served = mlflow.pyfunc.load_model(logged.uri).predict(pd.DataFrame({"image": rows}))
    with torch.no_grad():
        expected = torch.softmax(ensemble(model_inputs(images, IMAGE_SIZE)), 1)[:, 1].numpy()
    np.testing.assert_allclose(served["probability"].to_numpy(), expected, atol=1e-6)
