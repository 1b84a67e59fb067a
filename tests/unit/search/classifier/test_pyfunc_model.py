"""A model logged by fracture-tune 0.1.0 (its loader imports ``fracture_tune.search.classifier.pyfunc_model``)
loads and scores with today's package, through MLflow and through ``load_classifier``.

The fixture, tests/fixtures/model_logged_by_0.1.0, was written by tools/log_fixture_model.py running commit
d9a7d6e's code: a tiny CNN whose probability rises with the image's brightness, threshold 0.37.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_runs import REPO_ROOT

from fracture_tune.search.retrain.mlflow_run import png_bytes

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "model_logged_by_0.1.0"


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "model"))


def _images() -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    return {
        "dark": png_bytes(rng.integers(0, 60, (40, 48), dtype=np.uint8)),
        "bright": png_bytes(rng.integers(190, 255, (40, 48), dtype=np.uint8)),
    }


def test_the_fixture_imports_the_old_module_path() -> None:
    loader = (FIXTURE / "pyfunc_entry.py").read_text(encoding="utf-8")
    assert "from fracture_tune.search.classifier.pyfunc_model import FractureClassifierModel" in loader


def test_mlflow_loads_and_serves_a_model_logged_under_the_old_path(model_dir: Path) -> None:
    import mlflow.pyfunc

    images = _images()
    served = mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame({"image": list(images.values())}))
    dark, bright = served["probability"]
    assert bright > dark + 0.05  # the model's own behaviour (0.78 vs 0.87), not a constant
    assert list(served["threshold"]) == [0.37, 0.37]
    assert list(served["label"]) == ["broken" if p >= 0.37 else "normal" for p in served["probability"]]


def test_fracture_tune_loads_the_old_model_and_agrees_with_mlflow(model_dir: Path, tmp_path: Path) -> None:
    import mlflow.pyfunc

    from fracture_tune.classifier.predict import load_classifier

    images = _images()
    files = []
    for name, data in images.items():
        files.append(tmp_path / f"{name}.png")
        files[-1].write_bytes(data)
    ours = load_classifier(str(model_dir), verify=False).predict(files)
    served = mlflow.pyfunc.load_model(str(model_dir)).predict(pd.DataFrame({"image": list(images.values())}))
    np.testing.assert_allclose(ours["probability"], served["probability"], atol=1e-6)
