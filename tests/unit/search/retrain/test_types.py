"""Each retrain option is defined once (``RetrainOptions``): ``fracture_tune.retrain``'s keyword arguments and
the search config keys they default to follow it (the command's flags and the docs table: test_cli.py)."""

from __future__ import annotations

import dataclasses
import inspect

import fracture_tune as ft
from fracture_tune.search.config import ExperimentConfig
from fracture_tune.search.retrain.types import RetrainOptions, option_spec

FIELDS = dataclasses.fields(RetrainOptions)


def test_the_api_takes_every_option_with_its_default() -> None:
    parameters = inspect.signature(ft.retrain).parameters
    assert list(parameters) == [field.name for field in FIELDS]
    for field in FIELDS:
        assert parameters[field.name].default == field.default, field.name


def test_every_config_key_an_option_defaults_to_exists() -> None:
    for field in FIELDS:
        key = option_spec(field.name).config_key
        if key is None:
            continue
        section, name = key.split(".")
        model = ExperimentConfig.model_fields[section].annotation
        assert name in model.model_fields, f"{field.name}: {key} is no key of the search config"  # type: ignore[union-attr]
