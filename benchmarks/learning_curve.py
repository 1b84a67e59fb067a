"""Learning curve: test AUROC of one fixed recipe trained on growing slices of the train split.

    python benchmarks/learning_curve.py --data $FRACATLAS_DIR     # ~20 min on 2 cores (64 px)

Asks what a search cannot answer: how much of the gap to a quality goal is configuration and how much is
labelled data. For each split seed, the recipe trains on a seeded slice of the train split (``--fractions``
of it) with the same number of optimiser steps for every slice (``aug_factor`` x fraction is constant: a
quarter of the images are seen four times as often), is scored once on that split seed's untouched test
split (95 % stratified bootstrap CI) and with horizontal-flip test-time averaging. A least-squares line of
mean test AUROC against log2(training images) gives the gain per doubling of the data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_report import default_out, fracatlas_dir, write_report

from fracture_tune.classifier.evaluation import bootstrap_metrics
from fracture_tune.data.prepare import prepare_dataset
from fracture_tune.trainables.engine import fit, predict_proba

# A mid-sized member of the search space (configs/fracatlas.yaml): tunable CNN 32/64/128 at 64 px.
RECIPE: dict[str, Any] = {
    "model": "tunable_cnn",
    "c1": 32,
    "c2": 64,
    "c3": 128,
    "dropout": 0.5,
    "optimizer": "adam",
    "lr": 2e-3,
    "batch_size": 32,
    "schedule": "cosine",
    "warmup_epochs": 1,
    "aug_strength": 1.0,
    "class_weighting": "balanced",
    "device": "cpu",
    "seed": 0,
}


def run_one(arrays: Any, fraction: float, args: argparse.Namespace) -> dict[str, Any]:
    train_count = arrays.indices("train").size
    limit = train_count if fraction >= 1 else max(2, round(train_count * fraction))
    aug_factor = max(1, round(args.aug_factor / fraction))
    config = {**RECIPE, "epochs": args.epochs, "aug_factor": aug_factor, "train_limit": limit}
    started = time.perf_counter()
    result = fit(config, arrays, eval_split=None)
    test = arrays.indices("test")
    labels, images = arrays.labels[test], arrays.images[test]
    plain = predict_proba(result.model, images, result.config)
    flipped = predict_proba(result.model, np.ascontiguousarray(images[:, :, ::-1]), result.config)
    intervals = bootstrap_metrics(labels, plain, n_resamples=args.resamples)
    averaged = bootstrap_metrics(labels, (plain + flipped) / 2, n_resamples=args.resamples)
    auroc = intervals["auroc"]
    return {
        "fraction": fraction,
        "train_images": int(limit),
        "aug_factor": aug_factor,
        "seconds": time.perf_counter() - started,
        "test_auroc": auroc.value,
        "test_auroc_ci": [auroc.lower, auroc.upper],
        "test_accuracy": intervals["accuracy"].value,
        "test_auroc_flip_tta": averaged["auroc"].value,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=fracatlas_dir(),
        help="image folder with class sub-folders (default: $FRACATLAS_DIR)",
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--aug-factor", type=int, default=4, help="views per image per epoch at fraction 1")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for learning_curve.json "
        "(default: bench/learning-curve_<data>-<size>px_<machine>_<date>)",
    )
    args = parser.parse_args()
    args.out = args.out or default_out(f"learning-curve_{args.data.name}-{args.image_size}px")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for split_seed in args.split_seeds:
        arrays = prepare_dataset(args.data, image_size=args.image_size, seed=split_seed).dataset.arrays
        for fraction in args.fractions:
            row = {"split_seed": split_seed, **run_one(arrays, fraction, args)}
            rows.append(row)
            print(
                f"split seed {split_seed}  {row['train_images']:5d} train images (x{row['aug_factor']})  "
                f"test AUROC {row['test_auroc']:.3f} [{row['test_auroc_ci'][0]:.3f}, "
                f"{row['test_auroc_ci'][1]:.3f}]  flip-averaged {row['test_auroc_flip_tta']:.3f}  "
                f"accuracy {row['test_accuracy']:.3f}  {row['seconds']:.0f} s",
                flush=True,
            )
    summary = summarise(rows, args.fractions)
    for line in summary["lines"]:
        print(line)
    write_report(
        args.out / "learning_curve.json",
        recipe=RECIPE,
        epochs=args.epochs,
        image_size=args.image_size,
        rows=rows,
        slope_per_doubling=summary["slope"],
        intercept=summary["intercept"],
    )


def summarise(rows: list[dict[str, Any]], fractions: list[float]) -> dict[str, Any]:
    lines, xs, ys = [], [], []
    for fraction in fractions:
        group = [row for row in rows if row["fraction"] == fraction]
        images = float(np.mean([row["train_images"] for row in group]))
        mean = float(np.mean([row["test_auroc"] for row in group]))
        tta = float(np.mean([row["test_auroc_flip_tta"] for row in group]))
        xs.append(np.log2(images))
        ys.append(mean)
        lines.append(
            f"fraction {fraction:g}: ~{images:.0f} images, mean test AUROC {mean:.3f} "
            f"(flip-averaged {tta:.3f}) over {len(group)} split seeds"
        )
    slope, intercept = np.polyfit(xs, ys, 1) if len(xs) > 1 else (float("nan"), float("nan"))
    lines.append(f"gain per doubling of the training images: {slope:+.3f} AUROC")
    return {"lines": lines, "slope": float(slope), "intercept": float(intercept)}


if __name__ == "__main__":
    main()
