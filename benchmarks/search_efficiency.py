"""Search efficiency: the seed's sequential Optuna protocol vs ``fracture-tune search``, side by side.

    FRACATLAS_DIR=/data/fracatlas python benchmarks/search_efficiency.py     # ~20-30 min on 2 cores
    python benchmarks/search_efficiency.py --quick                           # ~5 min, synthetic only

For each dataset (fracatlas at 64x64, the synthetic set), with the same trial budget, the same search
space (the seed's, conv widths divided by ``--width-scale``), the same train slice (``--slice-images``
images an epoch = distinct images x ``--aug-factor``), the same <= ``--val-limit`` validation images and
the same objective (validation AUROC; accuracy reported too):

(a) the seed: one process, sequential Optuna TPE + MedianPruner, 7-epoch trials, ImageFolder + PIL every
    epoch (benchmarks/seed_protocol.py);
(b) ``fracture-tune search``: OptunaSearch (TPE) + ASHA, 2 concurrent 1-thread trials, cached arrays,
    the engine, ``resources.reuse_actors: true``; run as a subprocess and timed from before it starts
    (Ray start-up and MLflow included).

Each side's best configuration is then retrained identically (engine, full train split, same epochs,
training seeds 0..``--retrain-seeds``-1) and scored once per seed on the test split; medians reported.
Prints the side-by-side table, writes results.json and an
anytime curve (best validation metric vs wall time) PNG per dataset into ``--out`` (default:
``bench/search-efficiency_<datasets>-<slice>-slice-seed<seed>_<machine>_<date>``).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_report import default_out, fracatlas_dir, write_report
from search_runs import anytime_curve, run_search_cli, time_to_reach
from seed_protocol import SEED_LR_RANGE, SeedProtocolSettings, run_seed_protocol, scaled_space

from fracture_tune.data.dataset import PreparedDataset
from fracture_tune.search.config import config_from_dict
from fracture_tune.search.run import prepare_search_dataset
from fracture_tune.trainables.engine import fit, predict_proba
from fracture_tune.trainables.metrics import binary_metrics

FRACATLAS = fracatlas_dir()  # $FRACATLAS_DIR
# CLI imports, data, MLflow store, ray.init and the Tuner before Tune's clock starts: 6.0 s, median of 5 runs
# of benchmarks/startup.py (5.8-7.3 s on the 2-core VM, 2026-11-27; ~8-9 s before that day's start-up cuts).
# Whether the search reached the seed's best in time is read from result times since the command started,
# not from this budget, which only ends the search about then.
STARTUP_ALLOWANCE_S = 7.0


def search_config(
    dataset: dict[str, Any],
    settings: SeedProtocolSettings,
    concurrency: int,
    trials: int | None = None,
    time_budget_s: float | None = None,
    grace_period: int = 1,
    reduction_factor: float = 2,
) -> dict[str, Any]:
    """The experiment YAML for side (b): the same space, slice, epochs and metric; the same trial budget
    unless ``trials`` / ``time_budget_s`` give it another (the equal-wall-time comparison)."""
    space: dict[str, Any] = {
        "lr": {"type": "float", "low": SEED_LR_RANGE[0], "high": SEED_LR_RANGE[1], "log": True}
    }
    space.update(
        {
            key: {"type": "categorical", "choices": choices}
            for key, choices in scaled_space(settings.width_scale).items()
        }
    )
    return {
        "dataset": dataset,
        "training": {
            **fixed_training(settings),
            "epochs": settings.epochs,
            "train_limit": settings.train_limit,
            "val_limit": settings.val_limit,
            "num_threads": 1,
        },
        "space": {"params": space},
        "searcher": {"seed": settings.seed, "n_startup_trials": max(4, 2 * concurrency)},
        "scheduler": {
            "grace_period": grace_period,
            "max_t": settings.epochs,
            "reduction_factor": reduction_factor,
        },
        "resources": {
            "cpus_per_trial": 1,
            "gpus_per_trial": 0,
            "max_concurrent_trials": concurrency,
            "reuse_actors": True,
        },  # opt-in: a worker process runs trial after trial
        "budget": {
            "num_trials": trials or settings.trials,
            **({"time_budget_s": time_budget_s} if time_budget_s else {}),
        },
        "metric": settings.metric,
        "best_trial": {"scope": "best_epoch", "min_epochs": 1},  # as the seed: best epoch of any trial
        "tracking": {"experiment_name": "bench-search-efficiency"},
    }


def fixed_training(settings: SeedProtocolSettings) -> dict[str, Any]:
    return {
        "model": "tunable_cnn",
        "input_size": settings.image_size,
        "aug_strength": 1.0,
        "aug_factor": settings.aug_factor,
        "optimizer": "adam",
        "schedule": "constant",
        "device": "cpu",
        "seed": settings.seed,
    }


def dataset_sections(name: str, image_size: int, synthetic_n: int) -> dict[str, Any]:
    if name == "fracatlas":
        return {"path": str(FRACATLAS), "image_size": image_size}
    return {
        "path": "synthetic",
        "synthetic_n": synthetic_n,
        "image_size": image_size,
        "val_fraction": 0.2,
        "test_fraction": 0.15,
    }


def retrain_and_test(
    params: dict[str, Any],
    dataset: PreparedDataset,
    settings: SeedProtocolSettings,
    epochs: int,
    seeds: int = 1,
) -> dict[str, Any]:
    """The same retrain for both sides: engine, full train split, training seeds 0..seeds-1, each scored
    once on test; the medians are the side's test figures (one seed's luck is not a config's quality)."""
    keys = ("lr", "dropout", "c1", "c2", "c3", "batch_size")
    config = {
        **fixed_training(settings),
        **{k: params[k] for k in keys},
        "epochs": epochs,
        "aug_factor": 1,
        "num_threads": 0,
    }
    started = time.perf_counter()
    per_seed: list[dict[str, float]] = []
    test_rows = dataset.arrays.indices("test")
    for seed in range(seeds):
        result = fit({**config, "seed": seed}, dataset.arrays, eval_split=None)
        probabilities = predict_proba(result.model, dataset.arrays.images[test_rows], result.config)
        metrics = binary_metrics(dataset.arrays.labels[test_rows], probabilities)
        per_seed.append({"test_auroc": metrics["auroc"], "test_accuracy": metrics["accuracy"]})
    return {
        "test_auroc": float(np.median([row["test_auroc"] for row in per_seed])),
        "test_accuracy": float(np.median([row["test_accuracy"] for row in per_seed])),
        "test_per_seed": per_seed,
        "retrain_seconds": time.perf_counter() - started,
    }


def compare(
    name: str, args: argparse.Namespace, settings: SeedProtocolSettings, scratch: Path
) -> dict[str, Any]:
    sections = dataset_sections(name, settings.image_size, args.synthetic_n)
    config = search_config(sections, settings, args.concurrency)
    prepared = prepare_search_dataset(config_from_dict(config))  # cached before either side is timed
    dataset = prepared.dataset
    print(
        f"[{name}] {dataset.arrays.images.shape[0]} images, key {dataset.key}; seed protocol: "
        f"{settings.trials} trials ...",
        flush=True,
    )
    seed = run_seed_protocol(dataset, settings)
    print(
        f"[{name}] seed protocol {seed.wall_seconds:.0f} s {seed.counts()}; load {os.getloadavg()[0]:.1f}; "
        "fracture-tune search ...",
        flush=True,
    )
    if args.search_time_fraction or args.search_trials:
        # Equal-wall-time variant: the search may try more configurations, but must stop within a
        # fraction of the seed protocol's wall time (Tune's budget starts after ~6–7 s of CLI/Ray start-up).
        budget = (
            max(30.0, args.search_time_fraction * seed.wall_seconds - STARTUP_ALLOWANCE_S)
            if args.search_time_fraction
            else None
        )
        config = search_config(
            sections,
            settings,
            args.concurrency,
            args.search_trials,
            budget,
            args.grace_period,
            args.reduction_factor,
        )
    search = run_search_cli(config, f"eff-{name}", scratch, num_cpus=args.concurrency)
    if search.returncode != 0 or not search.trials:
        raise RuntimeError(f"fracture-tune search failed ({search.returncode}):\n{search.output_tail}")
    metric = settings.metric
    seed_best, search_best = seed.best_trial(), search.best_trial(metric)
    seed_curve = anytime_curve([(e["elapsed_s"], e[metric]) for t in seed.trials for e in t.epochs])
    search_curve = anytime_curve([(e["elapsed_s"], e[metric]) for t in search.trials for e in t.epochs])
    seed_final = seed_best.best(metric)
    reach = time_to_reach(search_curve, seed_final)
    return {
        "dataset": name,
        "dataset_key": dataset.key,
        "images": int(dataset.arrays.images.shape[0]),
        "load_average_after": os.getloadavg(),
        "seed": side_summary(
            seed.wall_seconds,
            seed_best.params,
            seed_best.epochs,
            seed.counts(),
            seed_curve,
            retrain_and_test(seed_best.params, dataset, settings, args.retrain_epochs, args.retrain_seeds),
        ),
        "search": side_summary(
            search.wall_seconds,
            search_best.config,
            search_best.epochs,
            search.stop_counts(),
            search_curve,
            retrain_and_test(search_best.config, dataset, settings, args.retrain_epochs, args.retrain_seeds),
        ),
        "search_seconds_to_seed_best": reach,
        "ratio_search_time_to_seed_best_over_seed_wall": reach / seed.wall_seconds if reach else None,
        "ratio_wall": search.wall_seconds / seed.wall_seconds,
        "search_budget": config["budget"],
        "search_scheduler": config["scheduler"],
    }


def side_summary(
    wall: float,
    config: dict[str, Any],
    epochs: list[dict[str, float]],
    counts: dict[str, int],
    curve: list[tuple[float, float]],
    test: dict[str, float],
) -> dict[str, Any]:
    best_row = max(epochs, key=lambda row: row["val_auroc"])
    params = {k: config[k] for k in ("lr", "dropout", "c1", "c2", "c3", "batch_size")}
    return {
        "wall_seconds": wall,
        "best_config": params,
        "best_val_auroc": best_row["val_auroc"],
        "best_val_accuracy": max(row["val_accuracy"] for row in epochs),
        "val_accuracy_at_best_auroc": best_row["val_accuracy"],
        "trials": counts,
        "anytime_curve": curve,
        **test,
    }


def plot_curves(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4))
    for side, label in (
        ("seed", "seed: sequential Optuna + MedianPruner"),
        ("search", "fracture-tune search: TPE + ASHA, 2 concurrent"),
    ):
        curve = result[side]["anytime_curve"]
        times = [t for t, _ in curve] + [result[side]["wall_seconds"]]
        values = [v for _, v in curve] + [curve[-1][1]]
        axes.step(times, values, where="post", label=f"{label} (end {result[side]['wall_seconds']:.0f} s)")
    axes.axhline(result["seed"]["best_val_auroc"], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("wall time (s)")
    axes.set_ylabel("best validation AUROC so far")
    axes.set_title(f"Anytime curve, {result['dataset']} ({result['images']} images)")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def format_table(result: dict[str, Any]) -> str:
    seed, search = result["seed"], result["search"]
    rows = [
        ("wall time (s)", "wall_seconds", ".0f"),
        ("best val AUROC", "best_val_auroc", ".4f"),
        ("best val accuracy", "best_val_accuracy", ".4f"),
        ("test AUROC (retrained, median)", "test_auroc", ".4f"),
        ("test accuracy (retrained, median)", "test_accuracy", ".4f"),
    ]
    lines = [f"== {result['dataset']} ==", f"{'':34} {'seed protocol':>16} {'fracture-tune':>16}"]
    lines += [f"{label:34} {seed[key]:>16{spec}} {search[key]:>16{spec}}" for label, key, spec in rows]
    lines.append(f"{'trials':34} {_counts(seed['trials']):>16} {_counts(search['trials']):>16}")
    reach = result["search_seconds_to_seed_best"]
    ratio = result["ratio_search_time_to_seed_best_over_seed_wall"]
    lines.append(
        "search time to the seed's best val AUROC: "
        + (f"{reach:.0f} s = {ratio:.3f} x the seed's wall time" if reach else "not reached")
    )
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return "/".join(str(value) for value in counts.values()) + " " + "/".join(k[:4].lower() for k in counts)


def settings_from(args: argparse.Namespace) -> SeedProtocolSettings:
    return SeedProtocolSettings(
        trials=args.trials,
        epochs=args.epochs,
        slice_images=args.slice_images,
        aug_factor=args.aug_factor,
        val_limit=args.val_limit,
        image_size=args.image_size,
        width_scale=args.width_scale,
        seed=args.seed,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="synthetic only, 4 trials, 200-image slice, 100 validation images",
    )
    parser.add_argument(
        "--datasets", nargs="+", choices=("fracatlas", "synthetic"), default=["fracatlas", "synthetic"]
    )
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--slice-images", type=int, default=400)
    parser.add_argument("--aug-factor", type=int, default=10)
    parser.add_argument("--val-limit", type=int, default=150)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--width-scale", type=int, default=2)
    parser.add_argument("--synthetic-n", type=int, default=600)
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument(
        "--retrain-seeds",
        type=int,
        default=5,
        help="retrain each side's best config with this many seeds; medians reported",
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--search-trials",
        type=int,
        default=0,
        help="the search's trial budget (default: --trials, the same as the seed's)",
    )
    parser.add_argument(
        "--search-time-fraction",
        type=float,
        default=0.0,
        help="cap the search's wall time at this fraction of the seed protocol's (e.g. 0.25)",
    )
    parser.add_argument("--grace-period", type=int, default=1, help="the search's ASHA grace period")
    parser.add_argument("--reduction-factor", type=float, default=2.0, help="the search's ASHA factor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default: bench/search-efficiency_..., "
        "named for the datasets, slice, seed, machine and date)",
    )
    args = parser.parse_args()
    if args.quick:
        args.datasets, args.trials, args.slice_images, args.retrain_epochs = ["synthetic"], 4, 200, 3
        args.val_limit = 100
    what = f"search-efficiency_{'-'.join(args.datasets)}-{args.slice_images}-slice-seed{args.seed}"
    args.out = args.out or default_out(what + ("-quick" if args.quick else ""))
    return args


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    settings = settings_from(args)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-efficiency-") as scratch:
        for name in args.datasets:
            result = compare(name, args, settings, Path(scratch))
            plot_curves(result, args.out / f"anytime_{name}.png")
            print(format_table(result), flush=True)
            results.append(result)
    write_report(
        args.out / "results.json",
        settings=vars(settings) | {"retrain_epochs": args.retrain_epochs},
        results=results,
    )
    print(f"wrote {args.out}/anytime_*.png", flush=True)


if __name__ == "__main__":
    main()
