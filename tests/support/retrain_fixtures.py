"""A prepared synthetic dataset plus a hand-written search record, so retrain runs without a search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

IMAGE_SIZE = 32


def write_line_images(root: Path, per_class: int = 60, seed: int = 0) -> Path:
    """Fractured = a bright oblique line on noise; not fractured = noise only (learnable in 2 epochs)."""
    rng = np.random.default_rng(seed)
    for folder, positive in (("Fractured", True), ("Non_fractured", False)):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            image = rng.normal(90, 30, (48, 48))
            if positive:
                offset = int(rng.integers(-10, 10))
                for row in range(48):
                    col = min(47, max(0, row + offset))
                    image[row, max(0, col - 1) : col + 1] += 45
            pixels = np.clip(image, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{folder}_{index:03d}.png")
    return root


def fake_search(tmp_path: Path, tracking_uri: str, config: dict[str, Any]) -> dict[str, Any]:
    """Prepare the dataset, create the search's MLflow parent run and write its record + best trial."""
    from mlflow import MlflowClient

    from fracture_tune.data.prepare import prepare_dataset
    from fracture_tune.search.records import BestTrial, SearchRecord, write_best_trial, write_search_record

    prepared = prepare_dataset(
        write_line_images(tmp_path / "src"),
        cache_root=tmp_path / "datasets",
        image_size=IMAGE_SIZE,
        workers=1,
    )
    client = MlflowClient(tracking_uri=tracking_uri)
    artifacts = (tmp_path / "mlartifacts").as_uri()
    experiment_id = client.create_experiment("fake-search", artifact_location=artifacts)
    parent = client.create_run(experiment_id, run_name="search-fake").info.run_id
    run_dir = tmp_path / "runs" / "fake"
    arrays = prepared.dataset.arrays
    write_search_record(
        run_dir,
        SearchRecord(
            name="fake",
            run_dir=str(run_dir),
            dataset_cache_dir=str(prepared.cache_dir),
            dataset_key=arrays.dataset_key,
            split_hash=arrays.split_hash,
            metric="val_auroc",
            mode="max",
            best_trial_rule={"scope": "best_epoch", "min_epochs": 1},
            tracking_uri=tracking_uri,
            experiment_name="fake-search",
            experiment_id=experiment_id,
            parent_run_id=parent,
            code_version="test",
            library_versions={},
            status="finished",
        ),
    )
    write_best_trial(
        run_dir,
        BestTrial(
            trial_id="t0",
            trial_index=0,
            config=config,
            metric="val_auroc",
            mode="max",
            metric_value=0.9,
            best_epoch=2,
            epochs_run=2,
            metric_range=(0.7, 0.9),
            checkpoint_path="",
            mlflow_run_id="",
        ),
    )
    return {"run_dir": run_dir, "parent_run_id": parent, "prepared": prepared, "source": tmp_path / "src"}


def registered_champion(tmp_path: Path) -> dict[str, Any]:
    """``fake_search`` plus a quick real retrain (1 epoch, no baseline) that registers
    ``models:/fracture-classifier@champion`` in a sqlite store under ``tmp_path``."""
    from fracture_tune.cli import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    info = fake_search(tmp_path, uri, {"model": "tiny_cnn", "width": 4, "lr": 0.01, "batch_size": 16})
    argv = [
        "retrain",
        "--search",
        "fake",
        "--storage",
        str(tmp_path / "runs"),
        "--epochs",
        "1",
        "--no-baseline",
        "--resamples",
        "50",
        "--tracking-uri",
        uri,
    ]
    assert main(argv) == 0, "the retrain that registers the champion failed"
    return {**info, "uri": uri, "tmp": tmp_path}


def write_trials(
    run_dir: Path, trials: list[tuple[str, dict[str, Any], list[float]]], **settings: Any
) -> None:
    """A search's results table (``trial id, config, val_auroc per epoch`` per trial) and its saved config
    (``settings``: dotted keys such as ``best_trial.min_epochs``), as a finished search leaves them."""
    from fracture_tune.search.config import apply_overrides, config_from_dict, config_to_yaml
    from fracture_tune.search.records import RESOLVED_CONFIG_FILE
    from fracture_tune.search.results import summarise_history, write_results
    from fracture_tune.trainables.score import ScoreRule

    raw = apply_overrides({"dataset": {"image_size": IMAGE_SIZE}}, dict(settings))
    rule = config_from_dict(raw).score_rule
    rows = [
        summarise_history(
            {
                "trial_id": trial_id,
                "trial_index": index,
                "status": "finished",
                "stop_detail": "",
                "metric_history": history,
                "config": config,
                "node_id": "",
                "mlflow_run_id": "",
                "error": "",
                "best_checkpoint": "",
            },
            rule,
        )
        for index, (trial_id, config, history) in enumerate(trials)
    ]
    assert isinstance(rule, ScoreRule)
    write_results(run_dir, rows)
    (run_dir / RESOLVED_CONFIG_FILE).write_text(config_to_yaml(config_from_dict(raw)), encoding="utf-8")
