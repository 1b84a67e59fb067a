"""Every value a trial would reject is rejected when the config loads, before Ray starts, naming its key."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from cli_runs import REPO_ROOT

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import config_from_dict


def _config(
    training: dict[str, Any] | None = None, params: dict[str, Any] | None = None, **extra: Any
) -> Any:
    return config_from_dict({"training": training or {}, "space": {"params": params or {}}, **extra})


@pytest.mark.parametrize(
    ("training", "params", "fragment"),
    [
        (
            {"optimizer": "adamm"},
            {},
            r"training\.optimizer: optimizer='adamm' is not one of .*did you mean 'adam'",
        ),
        ({"model": "tunable_cn"}, {}, r"training\.model: .*did you mean 'tunable_cnn'"),
        (
            {},
            {"schedule": {"type": "categorical", "choices": ["cosine", "cosin"]}},
            r"space\.params\.schedule\.choices",
        ),
        (
            {"model": "tunable_cnn"},
            {"dropout": {"type": "float", "low": 0.1, "high": 1.5}},
            r"space\.params\.dropout\.high: the range reaches 1\.5",
        ),
        (
            {},
            {"lr": {"type": "float", "low": 0.0, "high": 0.1}},
            r"space\.params\.lr\.low: the range reaches 0\.0",
        ),
        (
            {},
            {"label_smoothing": {"type": "float", "low": 0.0, "high": 1.0}},
            r"space\.params\.label_smoothing\.high",
        ),
        (
            {},
            {"batch_size": {"type": "float", "low": 16, "high": 64}},
            r"space\.params\.batch_size: batch_size takes whole",
        ),
        ({}, {"amp": {"type": "int", "low": 0, "high": 1}}, r"space\.params\.amp: amp is a bool"),
        (
            {"model": "deep_cnn"},
            {"kernel_size": {"type": "int", "low": 3, "high": 7}},
            r"kernel_size must be odd",
        ),
        ({"epochs": 0}, {}, r"training\.epochs: epochs=0 is out of range"),
    ],
)
def test_values_a_trial_would_reject(training: dict, params: dict, fragment: str) -> None:
    with pytest.raises(FractureTuneError, match=fragment):
        _config(training, params)


def test_values_the_engine_accepts_pass() -> None:
    _config(
        {"input_size": 0, "model": "deep_cnn"},
        {"kernel_size": {"type": "int", "low": 3, "high": 7, "step": 2}},
    )
    _config(
        {},
        {
            "dropout": {"type": "categorical", "choices": [0.0, 1.0]},
            "model": {"type": "categorical", "choices": ["tunable_cnn"]},
        },
    )


def test_a_conditional_parameter_is_checked_for_its_models_only() -> None:
    params = {
        "model": {"type": "categorical", "choices": ["tunable_cnn", "deep_cnn"]},
        "depth": {"type": "int", "low": 1, "high": 4, "when": {"model": ["deep_cnn"]}},
    }
    _config({}, params)
    del params["depth"]["when"]
    with pytest.raises(
        FractureTuneError, match=r"space\.params\.depth: model 'tunable_cnn' takes no parameter"
    ):
        _config({}, params)


def test_input_sizes_the_seed_cnns_cannot_flatten() -> None:
    with pytest.raises(FractureTuneError, match=r"dataset\.image_size \(input_size 0\): model 'base_cnn'"):
        _config({"model": "base_cnn"}, dataset={"image_size": 60})
    with pytest.raises(FractureTuneError, match=r"training\.input_size: model 'tunable_cnn'"):
        _config({"model": "tunable_cnn", "input_size": 100})
    with pytest.raises(FractureTuneError, match=r"space\.params\.input_size\.choices"):
        _config({"model": "base_cnn"}, {"input_size": {"type": "categorical", "choices": [64, 100]}})
    _config({"model": "deep_cnn"}, dataset={"image_size": 60})  # globally pooled: any size


def test_per_model_check_names_the_model_and_its_parameters() -> None:
    with pytest.raises(FractureTuneError, match=r"training.depth: model 'tunable_cnn' takes no parameter"):
        _config({"model": "tunable_cnn", "depth": 4})


def test_validating_configs_and_building_the_driver_never_import_torch() -> None:
    # torch costs a search's driver ~1.3 s of start-up (and a thin client may not have it at all): the
    # config checks use the torch-free key table, the trainable imports the engine in the worker, and Tune's
    # TensorBoard logger (tensorboardX imports torch) is left out.
    script = """
import sys
from pathlib import Path
from fracture_tune.data.prepare_settings import shipped_configs
from fracture_tune.search.config import load_config
from fracture_tune.search.tuner import build_run_config, build_trainable
for path in shipped_configs().values():
    config = load_config(path)
build_trainable(config, arrays=None)
build_run_config(config, "probe", Path("/tmp"), callbacks=[])
print(sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "tensorboardX")))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
