"""Tiny two-class image folders for search tests (no dependency on the synthetic generator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_line_dataset(root: Path, per_class: int = 60, size: int = 32, seed: int = 0) -> Path:
    """``Fractured/`` images carry a bright diagonal line on noise, ``Non_fractured/`` do not.

    Learnable in an epoch or two but not trivially (noise + random line position), so trials differ.
    """
    rng = np.random.default_rng(seed)
    for label, folder in ((1, "Fractured"), (0, "Non_fractured")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = rng.normal(100, 30, (size, size))
            image[:, size // 3 : 2 * size // 3] += 40  # a "bone shaft"
            if label:
                offset = int(rng.integers(-size // 4, size // 4))
                for row in range(size):
                    column = min(size - 1, max(0, row + offset))
                    image[row, column] += 60
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{folder}_{index:03d}.png")
    return root


SEARCH_CONFIG = {
    "training": {
        "model": "tunable_cnn",
        "epochs": 4,
        "input_size": 32,
        "device": "cpu",
        "num_threads": 1,
        "aug_strength": 0.0,
    },
    "space": {
        "params": {
            "lr": {"type": "float", "low": 1.0e-4, "high": 3.0e-2, "log": True},
            "batch_size": {"type": "categorical", "choices": [16, 32]},
            "c1": {"type": "categorical", "choices": [4, 8]},
            "c2": {"type": "categorical", "choices": [8, 16]},
            "c3": {"type": "categorical", "choices": [8, 16]},
        }
    },
    "searcher": {
        "seed": 0,
        "n_startup_trials": 2,
        "points_to_evaluate": [{"lr": 0.002, "batch_size": 16, "c1": 8, "c2": 16, "c3": 16}],
    },
    "scheduler": {"grace_period": 1, "max_t": 4, "reduction_factor": 2},
    "resources": {"cpus_per_trial": 1, "max_concurrent_trials": 2},
    "budget": {"num_trials": 8, "time_budget_s": 600},
    "best_trial": {"min_epochs": 2},
    "tracking": {"experiment_name": "search-it"},
}


def write_search_config(tmp_path: Path, **sections: dict) -> Path:
    """A tiny search over ``write_line_dataset`` images; ``sections`` update the defaults above."""
    import copy

    import yaml

    images = tmp_path / "images"
    if not images.exists():
        write_line_dataset(images)
    config = copy.deepcopy(SEARCH_CONFIG)
    config["dataset"] = {"path": str(images), "image_size": 32, "val_fraction": 0.25, "test_fraction": 0.15}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def search_command(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "fracture_tune.cli", "search", *args]


def run_local_search(tmp_path: Path, config: Path, name: str) -> tuple[Any, str]:
    """``fracture-tune search`` of ``config`` as ``name`` on a local 2-CPU Ray, tracked in
    ``tmp_path/mlflow.db``; asserts it succeeded and returns (the finished process, the tracking URI)."""
    import subprocess

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = subprocess.run(
        search_command("--config", str(config), "--name", name, "--tracking-uri", uri, "--num-cpus", "2"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done, uri


def child_runs(tracking_uri: str, experiment_name: str = "search-it") -> tuple[object, list]:
    """(parent run, child runs) of the only search in the experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(parents) == 1, [run.info.run_name for run in parents]
    return parents[0], children


def metric_steps(tracking_uri: str, run_id: str, metric: str = "val_auroc") -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run_id, metric))


def config_of(run_dir: Path) -> Any:
    """The config a search ran with (its saved ``resolved_config.yaml``)."""
    from fracture_tune.search.config import load_config

    return load_config(Path(run_dir) / "resolved_config.yaml")


def check_records(tmp_path: Path, name: str, tracking_uri: str) -> str:
    """``fracture-tune search check NAME``; asserts the records agree and returns what it printed."""
    import subprocess

    done = subprocess.run(
        search_command("check", name, "--tracking-uri", tracking_uri),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "records agree" in done.stdout, done.stdout[-5000:] + done.stderr[-3000:]
    return done.stdout
