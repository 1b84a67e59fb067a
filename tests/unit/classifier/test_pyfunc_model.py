"""The logged model loaded by MLflow itself: image files in, probability/label/threshold out, the same numbers
as ``Classifier.predict``; what is not an image is an INVALID_PARAMETER_VALUE error naming the row."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fracture_tune.classifier.package import WEIGHTS_FILE, classifier_metadata, read_package
from fracture_tune.classifier.predict import Classifier
from fracture_tune.search.retrain.mlflow_run import log_classifier, png_bytes
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import build_model

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import mlflow

    tmp_path = tmp_path_factory.mktemp("pyfunc")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    torch.manual_seed(0)
    model = build_model("tiny_cnn", input_size=IMAGE_SIZE, width=3).eval()
    with torch.no_grad():  # make the output depend visibly on brightness
        model[-1].weight.copy_(torch.tensor([[-2.0, -2.0, -2.0], [2.0, 2.0, 2.0]]))
    config = TrainConfig.from_flat({"model": "tiny_cnn", "width": 3})
    metadata = classifier_metadata(
        config, image_size=IMAGE_SIZE, threshold=0.37, class_names=("normal", "broken")
    )
    rng = np.random.default_rng(0)
    run_id = mlflow.MlflowClient().create_run(experiment_id="0").info.run_id
    example = png_bytes(rng.integers(0, 255, (IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8))
    result = log_classifier(
        run_id=run_id, model=model, example_image=example, metadata=metadata, local_dir=tmp_path / "model"
    )
    network, stored = read_package(Path(result.local_dir))
    images = {
        "dark": rng.integers(0, 90, (60, 40), dtype=np.uint8),
        "bright": rng.integers(150, 255, (50, 50), dtype=np.uint8),
    }
    files = {}
    for name, pixels in images.items():
        files[name] = tmp_path / f"{name}.jpg"
        Image.fromarray(np.dstack([pixels] * 3)).save(files[name], quality=90)  # RGB JPEG, like FracAtlas
    return {
        "folder": Path(result.local_dir),
        "uri": result.uri,
        "tmp": tmp_path,
        "files": files,
        "images": images,
        "ours": Classifier(network, stored, "test"),
    }


def _load(folder: Path | str) -> Any:
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(str(folder))


def test_image_bytes_paths_and_arrays_score_like_predict(logged: dict[str, Any]) -> None:
    files, images = logged["files"], logged["images"]
    served = _load(logged["uri"])
    rows = [files["dark"].read_bytes(), files["bright"].read_bytes(), files["bright"], images["dark"]]
    answer = served.predict(pd.DataFrame({"image": rows}))
    assert list(answer.columns) == ["probability", "label", "threshold"] and len(answer) == 4
    expected = logged["ours"].predict([files["dark"], files["bright"], files["bright"], images["dark"]])
    assert answer["probability"].tolist() == pytest.approx(expected["probability"].tolist(), abs=1e-7)
    assert answer["label"].tolist() == expected["label"].tolist()
    assert answer["label"].tolist() == ["broken" if p >= 0.37 else "normal" for p in answer["probability"]]
    assert answer["threshold"].tolist() == [0.37] * 4


@pytest.mark.parametrize(
    ("second_row", "message"),
    [
        (b"this is a text file, not a JPEG\n", "row 1: not a recognised image format"),
        (b"", "row 1: empty file (0 bytes)"),
        (np.zeros((4, 4, 3), np.uint8), "row 1: expected a uint8 [H, W] grayscale array"),
        (42, "row 1 is of type int: expected an image file's bytes"),
        ("/etc/hostname", "row 1 is of type str: expected an image file's bytes"),  # never read as a path
    ],
    ids=["text", "empty", "colour-array", "number", "text-path"],
)
def test_what_is_not_an_image_is_an_invalid_parameter_naming_the_row(
    logged: dict[str, Any], second_row: Any, message: str
) -> None:
    from mlflow.exceptions import MlflowException

    rows = [logged["files"]["dark"].read_bytes(), second_row]
    with pytest.raises(MlflowException) as raised:
        _load(logged["uri"]).predict(pd.DataFrame({"image": rows}))
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE" and raised.value.get_http_status_code() == 400
    assert message in raised.value.message and "base64" in raised.value.message


def test_a_folder_row_and_a_frame_without_the_image_column_are_refused(logged: dict[str, Any]) -> None:
    from mlflow.exceptions import MlflowException

    served = _load(logged["uri"]).unwrap_python_model()  # past MLflow's schema check, to our own
    with pytest.raises(MlflowException, match="row 0 is a folder"):
        served.predict(None, pd.DataFrame({"image": [logged["tmp"]]}))
    with pytest.raises(MlflowException, match=r"no 'image' column \(columns: \['picture'\]\)"):
        served.predict(None, pd.DataFrame({"picture": [b"x"]}))


def test_weights_changed_after_logging_are_not_served(logged: dict[str, Any]) -> None:
    from mlflow.exceptions import MlflowException

    copy = logged["tmp"] / "altered"
    shutil.copytree(logged["folder"], copy)
    weights = copy / "artifacts" / WEIGHTS_FILE
    state = torch.load(weights, weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 0.01
    torch.save(state, weights)
    with pytest.raises(MlflowException, match="differs from .* logged with the model"):
        _load(copy)
