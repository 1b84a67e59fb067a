"""The FracAtlas quality table from the retrain reports of benchmarks/fracatlas_quality.sh or
benchmarks/fracatlas_selection.sh.

    python benchmarks/fracatlas_table.py --work .fracture-tune/quality --out table.json   # prints Markdown

Rows per split seed: (a) the seed's base recipe and (b) its tuned recipe (``s<k>/seed_recipes/report.json``:
(b) is that retrain's model, (a) its base-recipe row), (c) fracture-tune's search + retrain of its best trial
(``s<k>/search/report.json``), (d) the search's finalists re-ranked over fresh seeds and (e) the top-3
ensemble (``s<k>/selection/report.json``: (e) is its registered model, (d) its single best model). Each cell
is the test value with its 95 % bootstrap CI. For (c), (d) and (e) the last column is AUROC minus (b)'s on the
same test images (matched by source path, from each folder's ``test_predictions.csv``) with its paired
bootstrap 95 % CI. The last rows are the mean over split seeds with the standard deviation between them, and
the mean paired difference with a CI from resampling each split seed's test images together.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from bench_report import markdown_table, write_report

METRICS = ("auroc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1")
ROWS = (
    ("a", "seed base recipe"),
    ("b", "seed tuned recipe"),
    ("c", "fracture-tune search + retrain"),
    ("d", "search + re-ranked finalists"),
    ("e", "search + top-3 ensemble"),
)
# Which test_predictions.csv column holds each row's probabilities, in which folder.
PREDICTIONS = {
    "b": ("seed_recipes", "probability"),
    "c": ("search", "probability"),
    "d": ("selection", "probability_single_best"),
    "e": ("selection", "probability"),
}
PAIRED_RESAMPLES = 2000


def load_rows(work: Path) -> list[dict[str, Any]]:
    rows = []
    for seed_dir in sorted(work.glob("s[0-9]*")):
        split_seed = int(seed_dir.name[1:])
        recipes = _read(seed_dir / "seed_recipes" / "report.json")
        searched = _read(seed_dir / "search" / "report.json")
        selected = _read(seed_dir / "selection" / "report.json")
        ensemble = (selected or {}).get("ensemble") or {}
        sources = {
            "a": recipes and recipes.get("baseline"),
            "b": recipes and recipes["optimized"],
            "c": searched and searched["optimized"],
            "d": ensemble.get("single_best"),
            "e": selected and selected["optimized"],
        }
        reports = {"a": recipes, "b": recipes, "c": searched, "d": selected, "e": selected}
        for key, label in ROWS:
            result = sources[key]
            report = reports[key]
            if not result or report is None:
                continue
            row = {
                "split_seed": split_seed,
                "row": key,
                "recipe": label,
                "test": {name: result["test"][name] for name in METRICS},
                "train_seconds": result.get("train_seconds"),
                "split_hash": report["dataset"]["split_hash"],
            }
            if key in ("c", "d", "e"):
                row.update(
                    config=report["config"],
                    source=report["source"],
                    trial=report["trial"],
                    threshold=result["threshold"],
                )
            if key == "e":
                row["members"] = [member["trial_id"] for member in ensemble["members"]]
            if key in ("c", "d", "e"):
                row["auroc_minus_b"] = _paired_against_b(seed_dir, key)
            rows.append(row)
    return rows


def _predictions(seed_dir: Path, key: str) -> dict[str, tuple[int, float]] | None:
    folder, column = PREDICTIONS[key]
    path = seed_dir / folder / "test_predictions.csv"
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as stream:
        return {row["source_path"]: (int(row["label"]), float(row[column])) for row in csv.DictReader(stream)}


def _paired_against_b(seed_dir: Path, key: str) -> dict[str, Any] | None:
    """AUROC(row) - AUROC(b) on the test images both scored, with a paired bootstrap CI."""
    from fracture_tune.classifier.evaluation import paired_auroc_difference

    mine, reference = _predictions(seed_dir, key), _predictions(seed_dir, "b")
    if mine is None or reference is None:
        return None
    shared = sorted(set(mine) & set(reference))
    if len(shared) != len(mine) or len(shared) != len(reference):
        raise SystemExit(
            f"{seed_dir}: ({key}) and (b) scored different test images ({len(mine)} vs "
            f"{len(reference)}, {len(shared)} shared): not the same split"
        )
    labels = np.array([mine[path][0] for path in shared])
    if not np.array_equal(labels, [reference[path][0] for path in shared]):
        raise SystemExit(f"{seed_dir}: ({key}) and (b) disagree on test labels")
    scores = np.array([mine[path][1] for path in shared])
    base = np.array([reference[path][1] for path in shared])
    difference = paired_auroc_difference(labels, scores, base, n_resamples=PAIRED_RESAMPLES)
    return {
        **difference.as_dict(),
        "images": len(shared),
        "labels": labels.tolist(),
        "scores": scores.tolist(),
        "reference": base.tolist(),
    }


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    means = []
    for key, label in ROWS:
        chosen = [row for row in rows if row["row"] == key]
        if not chosen:
            continue
        mean: dict[str, Any] = {
            "row": key,
            "recipe": label,
            "split_seeds": [row["split_seed"] for row in chosen],
        }
        for name in METRICS:
            values = [row["test"][name]["value"] for row in chosen]
            mean[name] = {
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else None,
            }
        paired = [row["auroc_minus_b"] for row in chosen if row.get("auroc_minus_b")]
        if paired and len(paired) == len(chosen):
            mean["auroc_minus_b"] = mean_paired_difference(paired)
        means.append(mean)
    return means


def mean_paired_difference(
    per_seed: list[dict[str, Any]], resamples: int = PAIRED_RESAMPLES
) -> dict[str, Any]:
    """The mean over split seeds of AUROC(row) - AUROC(b), with a CI from resampling every split seed's test
    images (stratified, paired) in each draw and averaging the per-seed differences."""
    from fracture_tune.trainables.metrics import binary_metrics

    def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
        return float(binary_metrics(labels, scores)["auroc"])

    rng = np.random.default_rng(0)
    arrays = [(np.array(d["labels"]), np.array(d["scores"]), np.array(d["reference"])) for d in per_seed]
    point = statistics.fmean(d["value"] for d in per_seed)
    draws = np.empty(resamples)
    for draw in range(resamples):
        differences = []
        for labels, scores, reference in arrays:
            positives, negatives = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
            chosen = np.concatenate(
                [rng.choice(positives, positives.size), rng.choice(negatives, negatives.size)]
            )
            drawn = labels[chosen]
            differences.append(auroc(drawn, scores[chosen]) - auroc(drawn, reference[chosen]))
        draws[draw] = statistics.fmean(differences)
    lower, upper = np.quantile(draws, [0.025, 0.975])
    return {"value": point, "lower": float(lower), "upper": float(upper), "split_seeds": len(per_seed)}


def markdown(rows: list[dict[str, Any]], means: list[dict[str, Any]]) -> str:
    header = ["split seed", "recipe", *METRICS, "AUROC − (b), paired"]
    cells = [
        [
            row["split_seed"],
            f"({row['row']}) {row['recipe']}",
            *(_interval(row["test"][name]) for name in METRICS),
            _difference(row.get("auroc_minus_b")),
        ]
        for row in rows
    ]
    for mean in means:
        seeds = ",".join(str(seed) for seed in mean["split_seeds"])
        cells.append(
            [
                f"mean ({seeds})",
                f"({mean['row']}) {mean['recipe']}",
                *(_mean_cell(mean[name]) for name in METRICS),
                _difference(mean.get("auroc_minus_b")),
            ]
        )
    return markdown_table(header, cells)


def _difference(difference: dict[str, Any] | None) -> str:
    if not difference:
        return ""
    return f"{difference['value']:+.3f} [{difference['lower']:+.3f}, {difference['upper']:+.3f}]"


def _mean_cell(summary: dict[str, Any]) -> str:
    spread = "" if summary["sd"] is None else f" ± {summary['sd']:.3f}"  # no spread from one split seed
    return f"**{summary['mean']:.3f}**{spread}"


def _interval(interval: dict[str, float]) -> str:
    return f"{interval['value']:.3f} [{interval['lower']:.3f}, {interval['upper']:.3f}]"


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path(".fracture-tune/quality"))
    parser.add_argument("--out", type=Path, help="write rows and means as JSON here")
    args = parser.parse_args()
    rows = load_rows(args.work)
    if not rows:
        raise SystemExit(
            f"no retrain reports under {args.work}/s<seed>/: "
            "run benchmarks/fracatlas_quality.sh or fracatlas_selection.sh first"
        )
    means = summarise(rows)
    print(markdown(rows, means))
    for row in rows:
        if row["row"] in ("c", "d"):
            print(
                f"\nsplit seed {row['split_seed']} ({row['row']}): {row['source']}; "
                f"config {json.dumps(row['config'])}"
            )
        if row["row"] == "e":
            print(f"\nsplit seed {row['split_seed']} (e): members {', '.join(row['members'])}")
    write_report(args.out, rows=rows, means=means)


if __name__ == "__main__":
    main()
