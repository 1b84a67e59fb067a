"""The retrain report's "seed base CNN" row: it must train the seed recipe, not the searched one.

A user comparing the optimized row with the base row expects the two to differ only in what the search chose:
the base row keeps the seed's learning settings and takes only the run's epochs and execution settings.
"""

from __future__ import annotations

from fracture_tune.search.retrain.baseline import SEED_BASE_RECIPE, base_recipe_config


def test_the_baseline_keeps_the_seed_recipe_whatever_the_search_chose() -> None:
    optimized = {
        "model": "tunable_cnn",
        "lr": 0.03,
        "batch_size": 64,
        "optimizer": "sgd",
        "aug_strength": 0.7,
    }

    config = base_recipe_config(optimized, epochs=12)

    assert config["model"] == "base_cnn"
    assert config["lr"] == 1e-3
    assert config["batch_size"] == 16
    assert config["optimizer"] == "adam"
    assert config["aug_strength"] == 0.0
    assert config["epochs"] == 12


def test_the_baseline_runs_where_and_how_the_optimized_model_ran() -> None:
    optimized = {"input_size": 64, "device": "cuda", "seed": 7, "amp": True, "num_threads": 3, "lr": 0.5}

    config = base_recipe_config(optimized, epochs=3)

    assert {key: config[key] for key in ("input_size", "device", "seed", "amp", "num_threads")} == {
        "input_size": 64,
        "device": "cuda",
        "seed": 7,
        "amp": True,
        "num_threads": 3,
    }
    assert "compile" not in config  # not in the optimized config: left to the engine's default


def test_building_a_baseline_does_not_change_the_shared_recipe() -> None:
    before = dict(SEED_BASE_RECIPE)

    base_recipe_config({"seed": 1, "device": "cpu"}, epochs=99)

    assert before == SEED_BASE_RECIPE
