"""The FracAtlas quality table from benchmarks/fracatlas_quality.sh's retrain reports.

    python benchmarks/fracatlas_table.py --work .fracture-tune/quality --out table.json   # prints Markdown

Rows per split seed: (a) the seed's base recipe and (b) its tuned recipe (``s<k>/seed_recipes/report.json``:
(b) is that retrain's model, (a) its base-recipe row), (c) fracture-tune's search + retrain
(``s<k>/search/report.json``). Each cell is the test value with its 95 % bootstrap CI; the last rows are the
mean over split seeds with the standard deviation between them.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

METRICS = ("auroc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "f1")
ROWS = (("a", "seed base recipe"), ("b", "seed tuned recipe"), ("c", "fracture-tune search + retrain"))


def load_rows(work: Path) -> list[dict[str, Any]]:
    rows = []
    for seed_dir in sorted(work.glob("s[0-9]*")):
        split_seed = int(seed_dir.name[1:])
        recipes = _read(seed_dir / "seed_recipes" / "report.json")
        searched = _read(seed_dir / "search" / "report.json")
        sources = {"a": recipes and recipes.get("baseline"), "b": recipes and recipes["optimized"],
                   "c": searched and searched["optimized"]}
        for key, label in ROWS:
            result = sources[key]
            if not result:
                continue
            report = searched if key == "c" else recipes
            assert report is not None
            row = {"split_seed": split_seed, "row": key, "recipe": label,
                   "test": {name: result["test"][name] for name in METRICS},
                   "train_seconds": result.get("train_seconds"),
                   "split_hash": report["dataset"]["split_hash"]}
            if searched is not None and key == "c":
                row.update(config=searched["config"], source=searched["source"], trial=searched["trial"],
                           reproduction=searched["reproduction"], threshold=result["threshold"])
            rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    means = []
    for key, label in ROWS:
        chosen = [row for row in rows if row["row"] == key]
        if not chosen:
            continue
        mean: dict[str, Any] = {"row": key, "recipe": label,
                                "split_seeds": [row["split_seed"] for row in chosen]}
        for name in METRICS:
            values = [row["test"][name]["value"] for row in chosen]
            mean[name] = {"mean": statistics.fmean(values),
                          "sd": statistics.stdev(values) if len(values) > 1 else None}
        means.append(mean)
    return means


def markdown(rows: list[dict[str, Any]], means: list[dict[str, Any]]) -> str:
    header = "| split seed | recipe | " + " | ".join(METRICS) + " |"
    lines = [header, "| --- " * (len(METRICS) + 2) + "|"]
    for row in rows:
        cells = [_interval(row["test"][name]) for name in METRICS]
        lines.append(f"| {row['split_seed']} | ({row['row']}) {row['recipe']} | " + " | ".join(cells) + " |")
    for mean in means:
        cells = [_mean_cell(mean[name]) for name in METRICS]
        seeds = ",".join(str(seed) for seed in mean["split_seeds"])
        lines.append(f"| mean ({seeds}) | ({mean['row']}) {mean['recipe']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_cell(summary: dict[str, Any]) -> str:
    spread = "" if summary["sd"] is None else f" ± {summary['sd']:.3f}"  # no spread from one split seed
    return f"**{summary['mean']:.3f}**{spread}"


def _interval(interval: dict[str, float]) -> str:
    return f"{interval['value']:.3f} [{interval['lower']:.3f}, {interval['upper']:.3f}]"


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(".fracture-tune/quality"))
    parser.add_argument("--out", type=Path, help="write rows and means as JSON here")
    args = parser.parse_args()
    rows = load_rows(args.work)
    if not rows:
        raise SystemExit(f"no retrain reports under {args.work}/s<seed>/: "
                         "run benchmarks/fracatlas_quality.sh first")
    means = summarise(rows)
    print(markdown(rows, means))
    for row in rows:
        if row["row"] == "c":
            print(f"\nsplit seed {row['split_seed']}: {row['source']}; config {json.dumps(row['config'])}")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "means": means}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
