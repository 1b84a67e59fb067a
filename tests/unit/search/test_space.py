"""The YAML space becomes a define-by-run function that Ray's OptunaSearch samples, warm start included."""

from __future__ import annotations

import pickle

import optuna
import pytest
from ray.tune.search.optuna import OptunaSearch

from fracture_tune.search.config import config_from_dict
from fracture_tune.search.space import DefineByRunSpace

CONDITIONAL = {
    "model": {"type": "categorical", "choices": ["tunable_cnn", "resnet18"]},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "c1": {"type": "categorical", "choices": [16, 32], "when": {"model": ["tunable_cnn"]}},
    "epochs": {"type": "int", "low": 2, "high": 4},
}


def _searcher(params: dict, points: list | None = None, seed: int = 0) -> OptunaSearch:
    config = config_from_dict({"space": {"params": params}, "searcher": {"points_to_evaluate": points or []}})
    space = DefineByRunSpace(config.space.resolved_params())
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=2)
    return OptunaSearch(
        space=space, metric="val_auroc", mode="max", sampler=sampler, points_to_evaluate=points
    )


def test_conditional_param_only_with_its_parent_value() -> None:
    searcher = _searcher(CONDITIONAL)
    configs = [searcher.suggest(f"t{i}") for i in range(20)]
    for config in configs:
        assert 1e-4 <= config["lr"] <= 1e-1 and config["epochs"] in (2, 3, 4)
        assert ("c1" in config) == (config["model"] == "tunable_cnn")
    assert {config["model"] for config in configs} == {"tunable_cnn", "resnet18"}


def test_points_to_evaluate_run_first_with_define_by_run_space() -> None:
    points = [
        {"model": "resnet18", "lr": 0.05, "epochs": 3},
        {"model": "tunable_cnn", "lr": 0.002, "c1": 32, "epochs": 2},
    ]
    searcher = _searcher(CONDITIONAL, points)
    assert searcher.suggest("a") == points[0]
    assert searcher.suggest("b") == points[1]
    assert searcher.suggest("c") not in points


def test_same_seed_same_suggestions() -> None:
    first = [_searcher(CONDITIONAL, seed=3).suggest(f"t{i}") for i in range(1)]
    second = [_searcher(CONDITIONAL, seed=3).suggest(f"t{i}") for i in range(1)]
    assert first == second


def test_seed_preset_matches_the_seed_recipe_and_pickles() -> None:
    config = config_from_dict({"training": {"model": "tunable_cnn"}, "space": {"preset": "seed"}})
    space = DefineByRunSpace(config.space.resolved_params())
    assert space.names() == ["lr", "dropout", "c1", "c2", "c3", "batch_size"]
    restored = pickle.loads(pickle.dumps(space))
    sampler = optuna.samplers.TPESampler(seed=0)
    searcher = OptunaSearch(space=restored, metric="val_auroc", mode="max", sampler=sampler)
    config_sample = searcher.suggest("x")
    assert config_sample["c3"] in (64, 128, 256) and 1e-5 <= config_sample["lr"] <= 1e-2


def test_drop_and_override_preset_params() -> None:
    config = config_from_dict(
        {
            "training": {"model": "tunable_cnn"},
            "space": {
                "preset": "seed",
                "drop": ["batch_size"],
                "params": {"dropout": {"type": "float", "low": 0.1, "high": 0.6}},
            },
        }
    )
    params = config.space.resolved_params()
    assert "batch_size" not in params and params["dropout"].type == "float"


def test_condition_on_unknown_parent_is_rejected() -> None:
    from fracture_tune.errors import FractureTuneError

    with pytest.raises(FractureTuneError, match="space"):
        config_from_dict(
            {
                "space": {
                    "params": {
                        "c1": {"type": "int", "low": 8, "high": 64, "when": {"model": ["tunable_cnn"]}}
                    }
                }
            }
        )
