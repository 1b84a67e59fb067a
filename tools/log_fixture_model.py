"""Write a tiny logged model (an MLflow pyfunc folder) the way the running fracture-tune logs one.

tests/fixtures/model_logged_by_0.1.0 was written by this script running fracture-tune 0.1.0's code (commit
d9a7d6e, where the pyfunc lived in ``fracture_tune.search.classifier``); the old-path test loads it with
today's package. Run: ``python tools/log_fixture_model.py OUT_DIR`` (with the code to log under on the path).
"""

from __future__ import annotations

import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def _module(*names: str) -> object:
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(names[0])


def main(out_dir: Path) -> None:
    import mlflow

    package = _module("fracture_tune.classifier.package", "fracture_tune.search.classifier.package")
    mlflow_run = _module(
        "fracture_tune.search.retrain.mlflow_run", "fracture_tune.search.classifier.mlflow_run"
    )
    from fracture_tune.trainables.config import TrainConfig
    from fracture_tune.trainables.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny_cnn", input_size=32, width=3).eval()
    with torch.no_grad():  # the probability rises with brightness
        model[-1].weight.copy_(torch.tensor([[-2.0, -2.0, -2.0], [2.0, 2.0, 2.0]]))
    config = TrainConfig.from_flat({"model": "tiny_cnn", "width": 3})
    metadata = package.classifier_metadata(  # type: ignore[attr-defined]
        config, image_size=32, threshold=0.37, class_names=("normal", "broken")
    )
    example = mlflow_run.png_bytes(np.random.default_rng(0).integers(0, 255, (32, 32), dtype=np.uint8))  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as scratch:
        mlflow.set_tracking_uri(f"sqlite:///{scratch}/mlflow.db")
        run_id = mlflow.MlflowClient().create_run(experiment_id="0").info.run_id
        logged = mlflow_run.log_classifier(  # type: ignore[attr-defined]
            run_id=run_id,
            model=model,
            example_image=example,
            metadata=metadata,
            local_dir=Path(scratch) / "m",
        )
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(logged.local_dir, out_dir)
    print(f"wrote {out_dir}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
