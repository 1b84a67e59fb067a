"""Scaling: trials/hour with 1 vs 2 concurrent trials here, and on 1 vs 2 Ray nodes of a local cluster.

    python benchmarks/scaling.py --trials 8 --epochs 4 --out scaling_<machine>_<date>.json
    python benchmarks/scaling.py --skip-cluster ...     # only the concurrency comparison

The same trial set every time: ``--trials`` configurations drawn once (seeded) from the quickstart space
and given as ``points_to_evaluate`` (so the searcher proposes exactly them), every trial runs
``--epochs`` epochs (ASHA's grace period = max_t: nothing is stopped), 1 thread a trial, the quickstart's
synthetic set. Each case is a whole ``fracture-tune search`` subprocess:

- local: ``--num-cpus 2`` with ``max_concurrent_trials`` 1 vs 2;
- cluster: ``fracture-tune cluster up --workers 0|1 --cpus-per-node 1`` (1 node with 1 CPU vs 2 nodes
  with 1 CPU each), the search run with ``--address`` against it, ``max_concurrent_trials`` 2.

trials/hour is given twice: end to end (the command's wall time, Ray and MLflow start-up included) and
steady (first trial start to last trial end). Cases alternate over ``--repeats`` (1, 2, 2, 1, ...) so
both see the same machine load; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_report import write_report
from search_runs import CLI, REPO_ROOT, run_search_cli, trial_span


def trial_set_config(trials: int, epochs: int, concurrency: int, seed: int) -> dict[str, Any]:
    """The quickstart YAML with a fixed list of ``trials`` points and no early stopping."""
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "configs" / "quickstart.yaml").read_text())
    rng = random.Random(seed)
    params = raw["space"]["params"]
    points = []
    for _ in range(trials):
        point = {
            key: rng.choice(spec["choices"]) for key, spec in params.items() if spec["type"] == "categorical"
        }
        point["lr"] = float(f"{10 ** rng.uniform(-3.5, -2):.3g}")
        points.append(point)
    raw["searcher"]["points_to_evaluate"] = points
    raw["training"]["epochs"] = epochs
    raw["scheduler"] = {"grace_period": epochs, "max_t": epochs, "reduction_factor": 2}
    raw["resources"]["max_concurrent_trials"] = concurrency
    raw["budget"] = {"num_trials": trials}
    raw["tracking"] = {"experiment_name": "bench-scaling"}
    return raw


def one_search(label: str, config: dict[str, Any], scratch: Path, **kwargs: Any) -> dict[str, Any]:
    name = f"{label.replace(' ', '-')}-{time.time_ns()}"
    run = run_search_cli(config, name, scratch, **kwargs)
    if run.returncode != 0 or len(run.trials) != config["budget"]["num_trials"]:
        raise RuntimeError(
            f"{label}: search failed ({run.returncode}), {len(run.trials)} trials:\n{run.output_tail}"
        )
    span = trial_span(run.trials)
    trials = len(run.trials)
    result = {
        "case": label,
        "wall_s": run.wall_seconds,
        "span_s": span,
        "trials_per_hour_end_to_end": 3600 * trials / run.wall_seconds,
        "trials_per_hour_steady": 3600 * trials / span,
        "load_average": os.getloadavg()[0],
    }
    print(
        f"{label:<28} wall {run.wall_seconds:6.1f} s  span {span:6.1f} s  "
        f"{result['trials_per_hour_end_to_end']:6.0f} trials/h end-to-end  "
        f"{result['trials_per_hour_steady']:6.0f} trials/h steady  (load {result['load_average']:.1f})",
        flush=True,
    )
    return result


def local_cases(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    runs = []
    for repeat in range(args.repeats):
        order = (1, 2) if repeat % 2 == 0 else (2, 1)
        for concurrency in order:
            config = trial_set_config(args.trials, args.epochs, concurrency, args.seed)
            runs.append(one_search(f"local {concurrency} concurrent", config, scratch, num_cpus=2))
    return runs


def cluster_cases(args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    runs = []
    config = trial_set_config(args.trials, args.epochs, 2, args.seed)
    for repeat in range(args.repeats):
        for workers in (0, 1) if repeat % 2 == 0 else (1, 0):
            cluster_dir = scratch / f"cluster-{repeat}-{workers}"
            state = cluster_up(cluster_dir, workers)
            try:
                env = (
                    {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["token_path"]}
                    if state.get("auth_enabled")
                    else {}
                )
                runs.append(
                    one_search(
                        f"cluster {workers + 1} node(s) x 1 CPU",
                        config,
                        scratch,
                        address=state["gcs_address"],
                        env=env,
                    )
                )
            finally:
                subprocess.run(
                    [str(CLI), "cluster", "down", "--cluster-dir", str(cluster_dir)],
                    cwd=REPO_ROOT,
                    capture_output=True,
                    text=True,
                    timeout=180,
                )
    return runs


def cluster_up(cluster_dir: Path, workers: int) -> dict[str, Any]:
    command = [
        str(CLI),
        "cluster",
        "up",
        "--workers",
        str(workers),
        "--cpus-per-node",
        "1",
        "--no-mlflow",
        "--cluster-dir",
        str(cluster_dir),
    ]
    process = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    if process.returncode != 0:
        raise RuntimeError(f"cluster up failed:\n{process.stdout[-2000:]}{process.stderr[-2000:]}")
    state: dict[str, Any] = json.loads((cluster_dir / "state.json").read_text())
    return state


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cases = list(dict.fromkeys(run["case"] for run in runs))
    keys = ("wall_s", "span_s", "trials_per_hour_end_to_end", "trials_per_hour_steady")
    rows = []
    for case in cases:
        mine = [run for run in runs if run["case"] == case]
        rows.append(
            {
                "case": case,
                "repeats": len(mine),
                **{key: statistics.median(run[key] for run in mine) for key in keys},
            }
        )
    for pair in (
        ("local 1 concurrent", "local 2 concurrent"),
        ("cluster 1 node(s) x 1 CPU", "cluster 2 node(s) x 1 CPU"),
    ):
        base = next((row for row in rows if row["case"] == pair[0]), None)
        other = next((row for row in rows if row["case"] == pair[1]), None)
        if base and other:
            for key in ("trials_per_hour_end_to_end", "trials_per_hour_steady"):
                other[f"speedup_{key}"] = other[key] / base[key]
            print(
                f"{pair[1]} vs {pair[0]}: x{other['speedup_trials_per_hour_end_to_end']:.2f} end-to-end, "
                f"x{other['speedup_trials_per_hour_steady']:.2f} steady",
                flush=True,
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as scratch:
        if not args.skip_local:
            runs += local_cases(args, Path(scratch))
        if not args.skip_cluster:
            runs += cluster_cases(args, Path(scratch))
    rows = summarise(runs)
    write_report(args.out, runs=runs, summary=rows)


if __name__ == "__main__":
    main()
