"""The static key lists a driver without torch validates against must equal what the engine accepts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search import engine_keys
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.models import list_models, model_params


def test_contract_lists_match_the_engine() -> None:
    engine_fields = {f.name for f in dataclasses.fields(TrainConfig) if f.name != "model_kwargs"}
    assert engine_keys.CONTRACT_ENGINE_KEYS == engine_fields
    live = {name: frozenset(model_params(name)) for name in list_models()}
    assert engine_keys.CONTRACT_MODEL_PARAMS == live, "add the model's parameters to search/engine_keys.py"


def test_validating_configs_and_building_the_driver_never_import_torch() -> None:
    # torch costs a search's driver ~1.3 s of start-up (and a thin client may not have it at all): the
    # config checks use static tables, the trainable imports the engine in the worker, and Tune's
    # TensorBoard logger (tensorboardX imports torch) is left out.
    script = """
import sys
from pathlib import Path
from fracture_tune.search.config import load_config
from fracture_tune.search.tuner import build_run_config, build_trainable
for path in sorted(Path("configs").glob("*.yaml")):
    config = load_config(path)
build_trainable(config, arrays=None)
build_run_config(config, "probe", Path("/tmp"), callbacks=[])
print(sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "tensorboardX")))
"""
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_per_model_check_names_the_model_and_its_parameters() -> None:
    with pytest.raises(FractureTuneError, match=r"training.depth: model 'tunable_cnn' takes no parameter"):
        engine_keys.check_engine_keys({"model": "tunable_cnn", "depth": 4}, {})
