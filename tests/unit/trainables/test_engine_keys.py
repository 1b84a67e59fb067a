"""The key table is the one source of truth: TrainConfig, the model registry and the search read it."""

from __future__ import annotations

import dataclasses

import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.engine_keys import ENGINE_KEYS, MODEL_KEYS, EngineKey
from fracture_tune.trainables.models import build_model, list_models, model_params, register_model


def test_train_config_fields_and_defaults_are_the_table() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "model_kwargs"}
    assert fields == {name: key.default for name, key in ENGINE_KEYS.items()}


def test_every_registered_model_has_its_parameters_in_the_table() -> None:
    assert sorted(MODEL_KEYS) == list_models()
    for name, keys in MODEL_KEYS.items():
        assert model_params(name) == {key: spec.default for key, spec in keys.items()}


def test_a_model_whose_parameters_differ_from_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match="tiny_cnn"):  # already registered, and a new name has no entry
        register_model("tiny_cnn")(lambda *, width, input_size=128: None)
    with pytest.raises(ValueError, match="no entry"):
        register_model("not_in_the_table")(lambda *, input_size=128: None)


def test_every_default_is_accepted_by_its_own_key() -> None:
    for key in [*ENGINE_KEYS.values(), *(k for keys in MODEL_KEYS.values() for k in keys.values())]:
        assert key.problem(key.default) is None, key.name
    TrainConfig.from_flat({}).validate()
    for name in list_models():
        if name != "resnet18":  # torchvision's model: slower to build, covered in test_models
            build_model(name, input_size=64)


@pytest.mark.parametrize(
    ("flat", "fragment"),
    [
        ({"optimizer": "adamm"}, "did you mean 'adam'"),
        ({"schedule": "cosin"}, "did you mean 'cosine'"),
        ({"lr": 0}, r"lr: float > 0"),
        ({"label_smoothing": 1.0}, r"label_smoothing: float >= 0 and < 1"),
        ({"model": "deep_cnn", "kernel_size": 4}, "must be odd"),
        ({"model": "tunable_cnn", "dropout": 1.5}, r"dropout: float >= 0 and <= 1"),
        ({"batch_size": 12.5}, "not a whole number"),
        ({"channels_last": "maybe"}, "not a boolean"),
        ({"warmup_epochs": float("inf")}, "must be finite"),
    ],
)
def test_train_config_rejects_what_the_table_rejects(flat: dict, fragment: str) -> None:
    with pytest.raises(FractureTuneError) as raised:
        TrainConfig.from_flat(flat)
    assert __import__("re").search(fragment, str(raised.value)), str(raised.value)


def test_zero_means_automatic_where_the_table_says_so() -> None:
    config = TrainConfig.from_flat({"input_size": 0, "num_threads": 0, "train_limit": 0, "val_limit": 0})
    assert (config.input_size, config.num_threads) == (0, 0)


def test_describe_names_the_bounds() -> None:
    assert ENGINE_KEYS["lr"].describe() == "lr: float > 0"
    assert ENGINE_KEYS["optimizer"].describe() == "optimizer: one of adam, adamw, sgd"
    assert EngineKey("k", int, 3, "", low=1, odd=True).describe() == "k: int >= 1 and odd"
