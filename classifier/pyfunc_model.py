"""The registered model as MLflow serves it: a pyfunc that takes image files and answers per image.

``mlflow.pyfunc.load_model(URI).predict(frame)`` and ``mlflow models serve`` score radiographs with no code of
the caller's:
- input: a DataFrame with one column, ``image`` (MLflow type ``binary``): per row an image file's bytes (PNG,
  JPEG, TIFF… as on disk; base64 in the scoring server's JSON, like any binary column). From Python a row
  may also be a ``pathlib.Path`` to an image file or a uint8 [H, W] grayscale array. A text value is never
  taken for a path: a request (JSON, CSV, Parquet) cannot make the server read its files.
- output: per image ``probability`` (of the positive class), ``label`` at ``threshold``, and ``threshold``
  (the operating threshold retrain registered).

Decoding and scoring are ``fracture-tune predict``'s own (``Classifier.predict``: ``data.decode`` and the
engine's ``predict_proba`` on the CPU), so a served image gets the probability ``predict`` gives its file. An
input that is not an image raises ``MlflowException`` with ``INVALID_PARAMETER_VALUE``, which the scoring
server answers with HTTP 400 and the message. Loading checks ``weights.pt`` against the sha256 logged with
the model, so a model whose weights changed in the artifact store is not served.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc.model import PythonModel, PythonModelContext

from fracture_tune.classifier.package import read_package_files, sha256_of_file
from fracture_tune.classifier.predict import Classifier

IMAGE_COLUMN = "image"
OUTPUT_COLUMNS = ("probability", "label", "threshold")
# Keys of the model's ``artifacts``: the two package files (package.py), copied by MLflow into artifacts/.
METADATA_ARTIFACT = "fracture_tune_model"
WEIGHTS_ARTIFACT = "weights"
WEIGHTS_SHA256_CONFIG = "weights_sha256"  # model_config key: the logged weights' sha256
INPUT_HINT = (
    f"send one image file's bytes (PNG, JPEG, TIFF...) per row in the {IMAGE_COLUMN!r} column; over HTTP, "
    f'base64 in JSON: {{"dataframe_split": {{"columns": ["{IMAGE_COLUMN}"], "data": [["<base64 of the '
    'file>"]]}}'
)


class FractureClassifierModel(PythonModel):
    """The pyfunc behind the registered model (see the module docstring for its input and output)."""

    def load_context(self, context: PythonModelContext) -> None:
        weights = Path(context.artifacts[WEIGHTS_ARTIFACT])
        expected = (context.model_config or {}).get(WEIGHTS_SHA256_CONFIG)
        actual = sha256_of_file(weights)
        if expected and actual != expected:
            raise MlflowException(
                f"{weights}: sha256 {actual[:16]}... differs from {str(expected)[:16]}... logged with the "
                "model: the weights changed after retrain; refusing to serve them"
            )
        model, metadata = read_package_files(Path(context.artifacts[METADATA_ARTIFACT]), weights)
        self.classifier = Classifier(model=model, metadata=metadata, source=str(weights.parent.parent))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        values = image_values(model_input)
        if not values:
            return pd.DataFrame({name: [] for name in OUTPUT_COLUMNS}).astype({"label": str})
        scored = self.classifier.predict(values)
        failed = scored[scored["status"] != "ok"]
        if len(failed):
            problems = [f"row {index}: {reason}" for index, reason in failed["reason"].head(5).items()]
            more = f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
            raise MlflowException(
                f"cannot score {len(failed)} of {len(scored)} inputs ({'; '.join(problems)}{more}): "
                f"{INPUT_HINT}",
                error_code=INVALID_PARAMETER_VALUE,
            )
        return pd.DataFrame(
            {
                "probability": scored["probability"].astype(np.float64),
                "label": scored["label"].astype(str),
                "threshold": np.full(len(scored), self.classifier.threshold, dtype=np.float64),
            },
            columns=list(OUTPUT_COLUMNS),
        )


def image_values(model_input: Any) -> list[Any]:
    """The images of ``model_input`` (its ``image`` column), one per row, checked to be of a kind this
    model takes; anything else is an ``MlflowException`` naming the row."""
    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN not in model_input.columns:
            raise MlflowException(
                f"the input has no {IMAGE_COLUMN!r} column (columns: {list(model_input.columns)}); "
                + INPUT_HINT,
                error_code=INVALID_PARAMETER_VALUE,
            )
        rows = list(model_input[IMAGE_COLUMN])
    else:
        rows = list(model_input) if isinstance(model_input, list | tuple) else [model_input]
    values: list[Any] = []
    for index, value in enumerate(rows):
        if isinstance(value, bytes | bytearray | np.ndarray):
            values.append(value)
        elif isinstance(value, os.PathLike) and not Path(value).is_dir():
            values.append(Path(value))  # a file to read, never a folder to search
        else:
            kind = "a folder" if isinstance(value, os.PathLike) else f"of type {type(value).__name__}"
            raise MlflowException(
                f"row {index} is {kind}: expected an image file's bytes (or, from Python, a pathlib.Path to "
                f"an image file or a uint8 [H, W] array); {INPUT_HINT}",
                error_code=INVALID_PARAMETER_VALUE,
            )
    return values
