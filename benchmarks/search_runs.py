"""Helpers for benchmarks that run ``fracture-tune search`` as a user would and read what it left on disk.

``run_search_cli`` writes an experiment YAML, runs the CLI in a subprocess (Ray start, MLflow, data load
and all, timed from before the process starts) and ``read_trial_epochs`` reads every reported epoch back
from Tune's per-trial ``result.json`` files, with its wall-clock time since the CLI started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("fracture-tune")


@dataclass
class SearchTrial:
    trial_id: str
    config: dict[str, Any]
    epochs: list[dict[str, float]] = field(default_factory=list)  # metrics + "elapsed_s" since CLI start

    def best(self, metric: str) -> float:
        return max((row[metric] for row in self.epochs), default=float("nan"))


@dataclass
class SearchRun:
    name: str
    run_dir: Path
    wall_seconds: float
    returncode: int
    trials: list[SearchTrial]
    output_tail: str

    def stop_counts(self) -> dict[str, int]:
        """Trials by why they ended, as the search recorded it (``results.csv``'s status column)."""
        import pandas as pd

        results = self.run_dir / "results.csv"
        if not results.exists():
            return {}
        return {str(k): int(v) for k, v in pd.read_csv(results)["status"].value_counts().sort_index().items()}

    def best_trial(self, metric: str) -> SearchTrial:
        scored = [trial for trial in self.trials if trial.epochs]
        return max(scored, key=lambda trial: (trial.best(metric), -scored.index(trial)))


def run_search_cli(
    config: dict[str, Any],
    name: str,
    scratch: Path,
    num_cpus: int | None = None,
    timeout: float = 3600,
    address: str | None = None,
    env: dict[str, str] | None = None,
) -> SearchRun:
    """Run ``fracture-tune search`` on ``config`` (a dict of YAML sections) in a scratch storage/MLflow."""
    config_file = scratch / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    storage = scratch / "runs"
    command = [
        str(CLI),
        "search",
        "--config",
        str(config_file),
        "--name",
        name,
        "--storage",
        str(storage),
        "--tracking-uri",
        f"sqlite:///{scratch / 'mlflow.db'}",
    ]
    if num_cpus:
        command += ["--num-cpus", str(num_cpus)]
    if address:
        command += ["--address", address]
    started_unix, started = time.time(), time.perf_counter()
    process = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    wall = time.perf_counter() - started
    run_dir = storage / name
    return SearchRun(
        name,
        run_dir,
        wall,
        process.returncode,
        read_trial_epochs(run_dir, started_unix),
        (process.stdout + process.stderr)[-3000:],
    )


def read_trial_epochs(run_dir: Path, started_unix: float) -> list[SearchTrial]:
    """Every epoch each trial reported (Tune's result.json), in trial start order."""
    trials = []
    for result_file in sorted(run_dir.glob("trial_*/result.json")):
        rows = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        trial = SearchTrial(rows[0]["trial_id"], dict(rows[0]["config"]))
        for row in rows:
            metrics = {k: float(v) for k, v in row.items() if isinstance(v, int | float) and k != "timestamp"}
            # Tune's timestamp has 1 s resolution: fine against runs of minutes.
            metrics["elapsed_s"] = float(row["timestamp"]) - started_unix
            trial.epochs.append(metrics)
        trials.append(trial)
    return sorted(trials, key=lambda trial: trial.epochs[0]["elapsed_s"])


def trial_span(trials: list[SearchTrial]) -> float:
    """Seconds from the first trial's start to the last trial's end (Ray and MLflow start-up excluded)."""
    starts = [trial.epochs[0]["elapsed_s"] - trial.epochs[0]["time_this_iter_s"] for trial in trials]
    return max(trial.epochs[-1]["elapsed_s"] for trial in trials) - min(starts)


def anytime_curve(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(time, value) points → (time, best value so far), sorted by time."""
    curve: list[tuple[float, float]] = []
    best = float("-inf")
    for elapsed, value in sorted(points):
        if value > best:
            best = value
            curve.append((elapsed, best))
    return curve


def time_to_reach(curve: list[tuple[float, float]], target: float) -> float | None:
    return next((elapsed for elapsed, value in curve if value >= target), None)
