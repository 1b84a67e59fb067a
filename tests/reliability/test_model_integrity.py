"""Model integrity, fail closed: every load path checks the weights against retrain's sha256 record.

A real retrain registers a model (local sqlite store, file artifact store); then its weights are altered where
they are stored — in the artifact store behind ``models:/…@champion`` and in the local ``model/`` folder — and
``predict`` must refuse each (exit 2, naming the record), a model with no record must be refused too, and
``--skip-hash-check`` must load it while saying what it skips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runs import Observe
from retrain_fixtures import registered_champion

from fracture_tune.cli import main

pytestmark = pytest.mark.integration

CHAMPION = "models:/fracture-classifier@champion"


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("integrity")
    info = registered_champion(tmp_path)
    image = next((info["source"] / "Fractured").glob("*.png"))
    return {**info, "image": str(image)}


def _predict(
    capsys: pytest.CaptureFixture[str], model: str, uri: str, image: str, *extra: str
) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["predict", image, "--model", model, "--tracking-uri", uri, *extra])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _alter(weights: Path) -> None:
    """Plausible tampering: still a valid state_dict, one weight nudged."""
    import torch

    state = torch.load(weights, map_location="cpu", weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 0.01
    torch.save(state, weights)


def test_registered_model_altered_in_the_artifact_store_is_refused(
    registered: dict[str, Any], capsys: pytest.CaptureFixture[str], observe: Observe
) -> None:
    uri, image = registered["uri"], registered["image"]
    code, output = _predict(capsys, CHAMPION, uri, image)
    assert code == 0, output
    stored = [path for path in (registered["tmp"] / "mlartifacts").rglob("artifacts/weights.pt")]
    assert len(stored) == 1, stored  # the one logged model behind the champion
    _alter(stored[0])

    code, output = _predict(capsys, CHAMPION, uri, image)
    assert code == 2, output
    assert "error: model 'models:/fracture-classifier@champion': weights.pt sha256" in output
    assert "recorded by retrain in the weights_sha256 tag of run" in output and "--skip-hash-check" in output
    run_id = json.loads((registered["run_dir"] / "retrain" / "report.json").read_text())["mlflow"]["run_id"]
    code, run_output = _predict(capsys, f"runs:/{run_id}/model", uri, image)
    assert code == 2 and "differs from" in run_output, run_output

    code, skipped = _predict(capsys, CHAMPION, uri, image, "--skip-hash-check")
    assert code == 0, skipped
    assert "warning: --skip-hash-check" in skipped and "1 of 1 files predicted" in skipped
    # MLflow's own loader (mlflow models serve) refuses it too: the sha256 logged with the model differs.
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(uri)
    with pytest.raises(MlflowException, match="differs from .* logged with the model") as served:
        mlflow.pyfunc.load_model(CHAMPION)
    observe(
        fault="registered model's weights.pt altered in the artifact store after registration",
        observed=f"predict {CHAMPION} exit 2: `{output.strip().splitlines()[0][:160]}...`; runs:/ URI "
        "exit 2; --skip-hash-check loads it with a warning; mlflow.pyfunc.load_model raises "
        f"`{str(served.value)[:80]}...`",
    )


def test_local_model_folder_altered_or_without_record_is_refused(
    registered: dict[str, Any], capsys: pytest.CaptureFixture[str], observe: Observe
) -> None:
    import shutil

    uri, image = registered["uri"], registered["image"]
    retrain = registered["run_dir"] / "retrain"
    copy = registered["tmp"] / "copy" / "retrain"
    shutil.copytree(retrain, copy)
    model = copy / "model"
    code, output = _predict(capsys, str(model), uri, image)
    assert code == 0, output

    _alter(model / "artifacts" / "weights.pt")
    code, altered = _predict(capsys, str(model), uri, image)
    assert code == 2 and "differs from" in altered and "report.json" in altered, altered

    (copy / "report.json").unlink()  # a model folder copied without its record
    code, unrecorded = _predict(capsys, str(model), uri, image)
    assert code == 2, unrecorded
    assert "no sha256 of its weights was recorded by retrain" in unrecorded
    assert "report.json (missing)" in unrecorded
    code, skipped = _predict(capsys, str(model), uri, image, "--skip-hash-check")
    assert code == 0 and "warning: --skip-hash-check" in skipped, skipped
    observe(
        fault="local model folder: weights altered; report.json (the record) removed",
        observed="predict exit 2 for each (`differs from ... report.json`; `no sha256 of its weights was "
        "recorded`); --skip-hash-check loads it with a warning",
    )
