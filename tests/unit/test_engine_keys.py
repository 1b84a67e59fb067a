"""The static key lists a driver without torch validates against must equal what the engine accepts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from search import engine_keys
from search.config import load_config
from trainables.config import TrainConfig
from trainables.models import list_models, model_params


def test_contract_lists_match_the_engine() -> None:
    engine_fields = {f.name for f in dataclasses.fields(TrainConfig) if f.name != "model_kwargs"}
    assert engine_keys.CONTRACT_ENGINE_KEYS == engine_fields
    model_keys = set().union(*(model_params(name) for name in list_models()))
    assert engine_keys.CONTRACT_MODEL_KEYS == model_keys


def test_shipped_configs_validate_without_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    # A thin client (no torch) submitting to a cluster validates with the static lists only.
    monkeypatch.setattr(engine_keys, "_engine_schema", lambda: None)
    # fracatlas-h100 searches deep_cnn's depth/kernel_size and resnet18 besides tunable_cnn.
    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "fracatlas-h100.yaml")
    assert "depth" in config.space.resolved_params()
