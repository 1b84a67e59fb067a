"""Scale with real training: many tiny-model trials at once, on local Ray and on a 3-node local cluster.

    python benchmarks/scale_training.py --trials 200 --out <file>

Each case is a whole ``fracture-tune search`` as a user runs it (the CLI in a subprocess, timed from its
start): the tiny CNN (``tiny_cnn``, width 4, 32 px, 48 training and 32 validation images a trial, 3 epochs,
ASHA grace 1 / factor 2), TPE, MLflow (SQLite) and every record on, workers reused (the shipped
``reuse_actors: true``), one logical CPU a trial:

- ``local 16``: a local Ray with 16 logical CPUs, 16 trials at once (on however many real cores there are);
- ``local 64``: 64 logical CPUs, 64 at once (``--many``: each worker holds ~0.34 GB with torch loaded, so
  64 need ~22 GB and Ray's memory monitor kills workers on a 24-GiB machine);
- ``cluster 3 x 6``: ``fracture-tune cluster up --workers 2 --cpus-per-node 6`` (a head and two workers,
  each a Ray node of its own), the search submitted with ``--address``, 16 at once.

Figures: trials per minute (trials / wall), the trials' statuses (errored: goal 0), and the search's records
check (goal: records agree). The cases run one after another, each alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench_report import default_out, write_report
from search_runs import CLI, REPO_ROOT, run_search_cli

SIZE = 32


def tiny_config(images: Path, trials: int, at_once: int) -> dict[str, Any]:
    return {
        "dataset": {"path": str(images), "image_size": SIZE, "val_fraction": 0.25, "test_fraction": 0.15},
        "training": {
            "model": "tiny_cnn",
            "width": 4,
            "epochs": 3,
            "input_size": SIZE,
            "train_limit": 48,
            "val_limit": 32,
            "device": "cpu",
            "num_threads": 1,
            "aug_strength": 0.0,
        },
        "space": {
            "params": {
                "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
                "batch_size": {"type": "categorical", "choices": [16, 32]},
            }
        },
        "searcher": {"seed": 0, "n_startup_trials": at_once},
        "scheduler": {"grace_period": 1, "max_t": 3, "reduction_factor": 2},
        "resources": {"cpus_per_trial": 1, "max_concurrent_trials": at_once, "reuse_actors": True},
        "budget": {"num_trials": trials},
        "tracking": {"experiment_name": "scale-training"},
    }


def one_case(label: str, config: dict[str, Any], scratch: Path, **where: Any) -> dict[str, Any]:
    name = re.sub(r"[^a-z0-9]+", "-", label)
    run = run_search_cli(config, name, scratch, **where)
    if run.returncode != 0:
        raise RuntimeError(f"{label}: search failed ({run.returncode}):\n{run.output_tail}")
    records = json.loads((run.run_dir / "reconciliation.json").read_text())
    statuses = run.stop_counts()
    result = {
        "case": label,
        "trials": sum(statuses.values()),
        "wall_s": round(run.wall_seconds, 1),
        "trials_per_minute": round(60 * sum(statuses.values()) / run.wall_seconds, 1),
        "statuses": statuses,
        "errored": statuses.get("error", 0),
        "records_agree": records["agree"],
        "record_differences": len(records["differences"]),
    }
    print(
        f"{label:<16} {result['trials']} trials in {result['wall_s']:.0f} s: {result['trials_per_minute']} "
        f"trials/min; {statuses}; records agree: {records['agree']}",
        flush=True,
    )
    return result


def cluster_case(trials: int, scratch: Path, images: Path) -> dict[str, Any]:
    cluster_dir = scratch / "cluster"
    up = subprocess.run(
        [
            str(CLI),
            "cluster",
            "up",
            "--workers",
            "2",
            "--cpus-per-node",
            "6",
            "--no-mlflow",
            "--cluster-dir",
            str(cluster_dir),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if up.returncode != 0:
        raise RuntimeError(f"cluster up failed:\n{up.stdout[-2000:]}{up.stderr[-2000:]}")
    state = json.loads((cluster_dir / "state.json").read_text())
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": state["token_path"]}
    env = auth if state.get("auth_enabled") else {}
    try:
        return one_case(
            "cluster 3 x 6", tiny_config(images, trials, 16), scratch, address=state["gcs_address"], env=env
        )
    finally:
        subprocess.run(
            [str(CLI), "cluster", "down", "--cluster-dir", str(cluster_dir)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--many", type=int, default=64, help="trials at once in the second local case")
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import sys

    sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))
    from search_fixtures import write_line_dataset

    with tempfile.TemporaryDirectory(prefix="bench-scale-training-") as folder:
        scratch = Path(folder)
        images = write_line_dataset(scratch / "images", per_class=60, size=SIZE)
        rows = [
            one_case("local 16", tiny_config(images, args.trials, 16), scratch, num_cpus=16),
            one_case(
                f"local {args.many}", tiny_config(images, args.trials, args.many), scratch, num_cpus=args.many
            ),
        ]
        if not args.skip_cluster:
            rows.append(cluster_case(args.trials, scratch, images))
    write_report(args.out or default_out("scale-training"), rows=rows)


if __name__ == "__main__":
    main()
