"""TrainConfig.from_flat: the flat keys of docs/contracts.md, strict about unknown ones."""

from __future__ import annotations

import numpy as np
import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig


def test_seed_defaults() -> None:
    config = TrainConfig.from_flat({})
    assert (config.model, config.optimizer, config.lr, config.batch_size, config.aug_strength) == (
        "base_cnn",
        "adam",
        1e-3,
        32,
        0.0,
    )


def test_model_kwargs_are_routed_to_the_model() -> None:
    config = TrainConfig.from_flat(
        {
            "model": "tunable_cnn",
            "c1": 32,
            "c2": 128,
            "c3": 256,
            "dropout": 0.7,
            "lr": 0.0058,
            "batch_size": 32,
        }
    )
    assert config.model_kwargs == {"c1": 32, "c2": 128, "c3": 256, "dropout": 0.7}
    assert config.lr == 0.0058
    assert TrainConfig.from_flat(config.to_flat()) == config


def test_unknown_key_is_named_with_valid_keys() -> None:
    with pytest.raises(FractureTuneError, match=r"'learning_rate'.*valid keys: .*\blr\b"):
        TrainConfig.from_flat({"learning_rate": 0.1})
    # a kwarg of another model is unknown for this one
    with pytest.raises(FractureTuneError, match="'c1'.*'base_cnn'"):
        TrainConfig.from_flat({"model": "base_cnn", "c1": 32})


def test_sampled_values_are_coerced() -> None:
    config = TrainConfig.from_flat(
        {"batch_size": np.int64(64), "epochs": 7.0, "lr": np.float32(0.01), "channels_last": "false"}
    )
    assert config.batch_size == 64 and isinstance(config.batch_size, int)
    assert config.epochs == 7 and config.channels_last is False


@pytest.mark.parametrize(
    "flat, fragment",
    [
        ({"optimizer": "rmsprop"}, "optimizer='rmsprop'"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"lr": -1.0}, "lr=-1.0"),
        ({"epochs": 2.5}, "epochs=2.5"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"schedule": "linear"}, "schedule='linear'"),
        ({"compile_mode": "fast"}, "compile_mode='fast' is not one of default, reduce-overhead"),
    ],
)
def test_bad_values_are_rejected(flat: dict, fragment: str) -> None:
    with pytest.raises(FractureTuneError, match=fragment.replace("[", r"\[")):
        TrainConfig.from_flat(flat)
