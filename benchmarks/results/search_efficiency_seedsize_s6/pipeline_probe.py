"""One configuration, the same rows, both pipelines: the seed's (PIL from the source JPEGs every epoch) and
the engine's (cached 64-px arrays). Prints the validation AUROC of each epoch per training seed.

    .venv/bin/python benchmarks/results/search_efficiency_seedsize_s6/pipeline_probe.py 3

The configuration is the one both sides chose as best in the seed-1 search-efficiency run; the slice is the
benchmark's seed-size one (100 distinct training images x 10 augmentations an epoch, <= 200 validation
images, 7 epochs), 2 threads each, one after the other.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import optuna  # noqa: E402
import torch  # noqa: E402
from search_efficiency import dataset_sections, fixed_training, search_config  # noqa: E402
from seed_protocol import SeedObjective, SeedProtocolSettings, link_image_folder  # noqa: E402

from fracture_tune.search.config import config_from_dict  # noqa: E402
from fracture_tune.search.driver import prepare_search_dataset  # noqa: E402
from fracture_tune.trainables.engine import fit, select_indices  # noqa: E402

PARAMS = {"lr": 0.0001786135519762598, "dropout": 0.3, "c1": 16, "c2": 64, "c3": 128, "batch_size": 32}


def main(seeds: int) -> None:
    settings = SeedProtocolSettings(trials=1, epochs=7, slice_images=1000, val_limit=200, width_scale=2,
                                    threads=2)
    torch.set_num_threads(2)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset = prepare_search_dataset(
        config_from_dict(search_config(dataset_sections("fracatlas", 64, 1000), settings, 2))).dataset
    train_rows = select_indices(dataset.arrays, ["train"], settings.train_limit)
    val_rows = select_indices(dataset.arrays, ["val"], settings.val_limit)
    for seed in range(seeds):
        settings.seed = seed
        with tempfile.TemporaryDirectory() as scratch:
            objective = SeedObjective(link_image_folder(Path(scratch) / "train", dataset, train_rows),
                                      link_image_folder(Path(scratch) / "val", dataset, val_rows), settings)
            study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
            study.enqueue_trial(PARAMS)
            started = time.perf_counter()
            study.optimize(objective, n_trials=1)
            seed_seconds = time.perf_counter() - started
        seed_side = [round(row["val_auroc"], 3) for row in objective.trials[0].epochs]
        config = {**fixed_training(settings), **PARAMS, "epochs": 7, "train_limit": settings.train_limit,
                  "val_limit": settings.val_limit, "num_threads": 2, "seed": seed}
        engine_side = engine_epochs(config, dataset.arrays)
        print(f"seed {seed}: seed pipeline {seed_side} best {max(seed_side)} ({seed_seconds:.0f} s)",
              flush=True)
        print(f"        engine        {engine_side[1:]} best {max(engine_side[1:])} ({engine_side[0]:.0f} s)",
              flush=True)


def engine_epochs(config: dict[str, object], arrays: object) -> list[float]:
    """[seconds, val AUROC of epoch 1, 2, ...] of one engine fit."""
    aurocs: list[float] = []
    started = time.perf_counter()
    fit(config, arrays, callbacks=[lambda metrics, _: aurocs.append(round(metrics["val_auroc"], 3))])
    return [time.perf_counter() - started, *aurocs]


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
