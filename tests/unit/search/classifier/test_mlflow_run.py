"""Logging the classifier on a machine with a GPU: MLflow validates the input example on the GPU by default,
but the exported (torch.export, CPU) program cannot move there — the H100 retrain warned
"Failed to validate serving input example ... can't be loaded on 'cuda' device"."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from fracture_tune.search.classifier.mlflow_run import log_classifier
from fracture_tune.trainables.models import build_model


def test_logging_validates_the_example_on_cpu_when_a_gpu_is_visible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_DEFAULT_PREDICTION_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # what MLflow's loader asks
    model = build_model("tiny_cnn", input_size=32)
    example = np.random.default_rng(0).standard_normal((2, 1, 32, 32)).astype(np.float32)
    run_id = mlflow.MlflowClient().create_run(experiment_id="0").info.run_id
    mlflow_logger = logging.getLogger("mlflow")  # MLflow's logger does not propagate to the root
    mlflow_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING):
            logged = log_classifier(run_id=run_id, model=model, example_batch=example,
                                    metadata={"class_names": ["negative", "positive"]},
                                    local_dir=tmp_path / "model")
    finally:
        mlflow_logger.removeHandler(caplog.handler)
    assert (Path(logged.local_dir) / "data" / "model.pt2").is_file()
    assert not [r for r in caplog.records if "Failed to validate serving input example" in r.getMessage()]
