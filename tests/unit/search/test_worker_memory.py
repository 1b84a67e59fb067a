"""The pre-flight memory check: a search whose trials at once would not fit a node's memory is warned, with a
number of trials that fits; one that fits is not."""

from __future__ import annotations

import logging

import pytest
from cli_runs import REPO_ROOT

from fracture_tune.search.config import ExperimentConfig, load_config
from fracture_tune.search.preflight import check_cluster_resources
from fracture_tune.search.worker_memory import (
    USABLE_SHARE,
    largest_trials,
    memory_warnings,
    worker_bytes,
)

# A node as `ray.nodes()` describes this 24 GiB VM's, started with --num-cpus 64.
VM = {
    "NodeManagerAddress": "192.0.2.2",
    "Alive": True,
    "Resources": {"CPU": 64.0, "memory": 15.3e9, "object_store_memory": 6.6e9},
}


def _quickstart(*overrides: str) -> ExperimentConfig:
    return load_config(REPO_ROOT / "configs" / "quickstart.yaml", list(overrides))


def test_the_largest_trial_takes_every_size_at_its_maximum() -> None:
    (trial,) = largest_trials(_quickstart())

    assert (trial.model, trial.input_size, trial.batch_size) == ("tunable_cnn", 64, 64)
    assert trial.model_kwargs == {"c1": 16, "c2": 32, "c3": 64, "dropout": 0.5}


def test_larger_batches_and_images_need_more_memory() -> None:
    batch_16 = "space.params.batch_size={type: categorical, choices: [16]}"
    small = worker_bytes(_quickstart(batch_16, "searcher.points_to_evaluate=[]"))
    large = worker_bytes(_quickstart())  # batch 64
    larger = worker_bytes(_quickstart("dataset.image_size=128", "training.input_size=128"))

    assert small < large < larger
    assert larger - large > 2.5 * (large - small)  # 4x the pixels a batch


def test_trials_at_once_beyond_a_nodes_memory_are_warned_with_a_number_that_fits() -> None:
    config = _quickstart("resources.max_concurrent_trials=64", "budget.num_trials=200")

    (line,) = memory_warnings(config, [VM])

    assert "192.0.2.2 may run 64 trials at once" in line
    fit = int(line.split("max_concurrent_trials=")[1].split(",")[0])
    usable = USABLE_SHARE * (15.3e9 + 6.6e9)
    assert fit * worker_bytes(config) <= usable < (fit + 1) * worker_bytes(config)


@pytest.mark.parametrize(
    "overrides",
    [
        ("resources.max_concurrent_trials=16", "budget.num_trials=200"),  # 16 fit
        ("resources.max_concurrent_trials=64", "budget.num_trials=1"),  # one trial only
        ("resources.max_concurrent_trials=64", "resources.cpus_per_trial=8"),  # 8 a node
    ],
)
def test_trials_at_once_that_fit_are_not_warned(overrides: tuple[str, ...]) -> None:
    assert memory_warnings(_quickstart(*overrides), [VM]) == []


def test_the_search_logs_the_warning_after_ray_starts(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: VM["Resources"])
    monkeypatch.setattr(ray, "nodes", lambda: [VM])
    config = _quickstart("resources.max_concurrent_trials=64", "budget.num_trials=200")

    with caplog.at_level(logging.WARNING):
        check_cluster_resources(config)

    assert "Ray's memory monitor would kill workers" in caplog.text
