"""Overhead of Ray Tune + MLflow + checkpointing per trial and per epoch vs the bare engine, one run.

    python benchmarks/overhead.py --trials 6 --epochs 1 6 --out overhead_<machine>_<date>.json

The quickstart config's first point (the seed's enhanced CNN, scaled down) on the quickstart's synthetic
set, one 1-thread trial at a time (max_concurrent_trials 1), nothing stopped by ASHA. Cases, interleaved
per epoch count so they see the same machine load:

- ``bare``: ``trainables.engine.fit`` in this process, timed call to return (model build, data to tensor,
  epochs, validation);
- ``tune``: the Tune function trainable reporting metrics only (no checkpoint), no callbacks;
- ``tune+ckpt``: the project's ``train_trial`` (a checkpoint every epoch), no callbacks;
- ``tune+ckpt+mlflow``: what ``fracture-tune search`` runs: ``train_trial`` + the MLflow and progress
  callbacks, a parent run in a scratch SQLite store;
- the last again with ``reuse_actors`` on/off, as ``--reuse`` says (default: both).

Per trial = ``Tuner.fit`` wall time / trials (Ray's start is timed once, separately: a search pays it
once). ``in_trial_s`` = Tune's ``time_total_s`` (the trainable's own time, without actor start-up).
``steady_per_trial_s`` = median start-to-start time of consecutive trials after the first (one trial at a
time, so this is one trial plus everything Tune, MLflow and checkpoints add between two trials).
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_report import write_report
from ray import tune

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.search.config import ExperimentConfig, config_from_dict, load_config
from fracture_tune.search.run import (
    SearchOptions,
    open_parent_run,
    prepare_search_dataset,
    search_environment,
)
from fracture_tune.trainables.engine import fit

REPO_ROOT = Path(__file__).resolve().parents[1]


def report_only_trial(config: dict[str, Any], data: DatasetArrays) -> None:
    """The adapter minus checkpoints: what Tune itself costs."""
    from fracture_tune.trainables.tune_adapter import trial_resources_config

    flat = trial_resources_config(config, {"CPU": 1})
    fit(flat, data, callbacks=[lambda metrics, snapshot: tune.report(metrics)])


def fixed_config(epochs: int, trials: int) -> ExperimentConfig:
    """The quickstart YAML with a one-point space (every trial the same config) and no early stopping."""
    base = load_config(REPO_ROOT / "configs" / "quickstart.yaml")
    raw = base.model_dump(mode="json")
    point = dict(base.searcher.points_to_evaluate[0])
    raw["space"] = {
        "params": {key: {"type": "categorical", "choices": [value]} for key, value in point.items()}
    }
    raw["searcher"]["points_to_evaluate"] = []
    raw["training"]["epochs"] = epochs
    raw["scheduler"] = {"grace_period": epochs, "max_t": epochs, "reduction_factor": 2}
    raw["resources"]["max_concurrent_trials"] = 1
    raw["budget"] = {"num_trials": trials}
    return config_from_dict(raw)


def bare_seconds(config: ExperimentConfig, arrays: DatasetArrays, trials: int) -> list[float]:
    flat = _point_config(config)
    times = []
    for _ in range(trials):
        started = time.perf_counter()
        fit(flat, arrays)
        times.append(time.perf_counter() - started)
    return times


def _point_config(config: ExperimentConfig) -> dict[str, Any]:
    from fracture_tune.search.tuner import fixed_trial_values

    point = {key: spec.choices[0] for key, spec in config.space.resolved_params().items() if spec.choices}
    return {**fixed_trial_values(config), **point}


def tune_seconds(
    case: str, config: ExperimentConfig, prepared: Any, scratch: Path, reuse: bool
) -> dict[str, Any]:
    """One search of ``config.budget.num_trials`` identical trials; per-trial wall and in-trial times."""
    from ray.tune.schedulers import ASHAScheduler

    from fracture_tune.search.run import search_callbacks
    from fracture_tune.search.tuner import build_run_config, build_searcher, fixed_trial_values
    from fracture_tune.trainables.tune_adapter import train_trial

    mode = "reuse" if reuse else "fresh"
    name = f"{case.replace('+', '-')}-{mode}-{config.planned_epochs}-{time.time_ns()}"
    callbacks: list[Any] = []
    if "mlflow" in case:
        options = SearchOptions(name=name, storage=scratch, tracking_uri=f"sqlite:///{scratch / 'mlflow.db'}")
        callbacks = search_callbacks(config, options, open_parent_run(config, options, prepared))
    starts = TrialStarts()
    callbacks.append(starts)
    trainable = train_trial if "ckpt" in case else report_only_trial
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        grace_period=config.scheduler.grace_period,
        max_t=config.scheduler.max_t,
    )
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, data=prepared.dataset.arrays), {"cpu": 1}),
        param_space=fixed_trial_values(config),
        tune_config=tune.TuneConfig(
            metric=config.metric,
            mode=config.metric_mode,
            scheduler=scheduler,
            search_alg=build_searcher(config),
            num_samples=config.budget.num_trials,
            max_concurrent_trials=1,
            reuse_actors=reuse,
        ),
        run_config=build_run_config(config, name, scratch, callbacks),
    )
    started = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - started
    results = [grid[index] for index in range(len(grid))]
    in_trial = [result.metrics["time_total_s"] for result in results if result.metrics]
    errors = [str(result.error) for result in results if result.error]
    if errors:
        raise RuntimeError(f"{case}: {len(errors)} trial(s) failed: {errors[0]}")
    cycles = [later - earlier for earlier, later in zip(starts.times[1:], starts.times[2:], strict=False)]
    return {
        "per_trial_s": wall / config.budget.num_trials,
        "in_trial_s": statistics.median(in_trial),
        "search_wall_s": wall,
        "steady_per_trial_s": statistics.median(cycles) if cycles else None,
    }


class TrialStarts(tune.Callback):
    """Notes when each trial starts: one at a time, start-to-start is what one more trial costs.

    The first trial (worker process start, cold imports) is left out of the steady-state figure.
    """

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.times.append(time.perf_counter())


def measure(epochs: int, args: argparse.Namespace, scratch: Path) -> list[dict[str, Any]]:
    """All cases at ``epochs``, repeated ``--repeats`` times in alternating order; medians per case."""
    config = fixed_config(epochs, args.trials)
    prepared = prepare_search_dataset(config)
    bare_seconds(config, prepared.dataset.arrays, 1)  # warm-up (imports, allocator)
    cases = [("bare", False)] + [(case, False) for case in ("tune", "tune+ckpt") if case in args.cases]
    cases += [("tune+ckpt+mlflow", reuse) for reuse in args.reuse if "tune+ckpt+mlflow" in args.cases]
    samples: dict[str, list[dict[str, Any]]] = {}
    for repeat in range(args.repeats):
        for case, reuse in cases if repeat % 2 == 0 else cases[::-1]:
            label = "bare engine fit" if case == "bare" else case + (" reuse_actors" if reuse else "")
            if case == "bare":
                bare = statistics.median(bare_seconds(config, prepared.dataset.arrays, args.trials))
                result = {"per_trial_s": bare, "in_trial_s": bare, "steady_per_trial_s": bare}
            else:
                result = tune_seconds(case, config, prepared, scratch, reuse)
            samples.setdefault(label, []).append(result)
    keys = ("per_trial_s", "in_trial_s", "steady_per_trial_s")
    rows = [
        {
            "epochs": epochs,
            "case": label,
            "repeats": len(found),
            **{key: _median_or_none([sample[key] for sample in found]) for key in keys},
        }
        for label, found in samples.items()
    ]
    bare_median = rows[0]["per_trial_s"]
    for row in rows:
        row["overhead_vs_bare"] = row["per_trial_s"] / bare_median - 1
        steady = row["steady_per_trial_s"]
        row["steady_overhead_vs_bare"] = steady / bare_median - 1 if steady else None
        steady_text = (
            f"  steady {steady:5.2f} s/trial ({100 * row['steady_overhead_vs_bare']:+5.1f} %)"
            if steady
            else ""
        )
        print(
            f"{epochs} epoch(s) {row['case']:<30} {row['per_trial_s']:6.2f} s/trial "
            f"(in-trial {row['in_trial_s']:5.2f} s)  overhead {100 * row['overhead_vs_bare']:+6.1f} %"
            + steady_text,
            flush=True,
        )
    return rows


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def per_epoch(rows: list[dict[str, Any]], low: int, high: int) -> list[dict[str, Any]]:
    """Marginal cost of one more epoch: (trial at ``high`` epochs - trial at ``low``) / (high - low)."""
    by_case = {(row["case"], row["epochs"]): row["per_trial_s"] for row in rows}
    bare = (by_case[("bare engine fit", high)] - by_case[("bare engine fit", low)]) / (high - low)
    result = []
    for case in dict.fromkeys(row["case"] for row in rows):
        if (case, low) in by_case and (case, high) in by_case:
            marginal = (by_case[(case, high)] - by_case[(case, low)]) / (high - low)
            result.append(
                {"case": case, "seconds_per_epoch": marginal, "overhead_vs_bare": marginal / bare - 1}
            )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=4, help="trials per search")
    parser.add_argument("--repeats", type=int, default=2, help="searches per case, order alternating")
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 6])
    parser.add_argument(
        "--reuse",
        type=lambda text: text == "on",
        nargs="+",
        default=[False, True],
        metavar="on|off",
        help="reuse_actors settings for the full case",
    )
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["tune", "tune+ckpt", "tune+ckpt+mlflow"],
        choices=["tune", "tune+ckpt", "tune+ckpt+mlflow"],
        help="Tune cases besides the bare engine (e.g. only the full stack)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for key, value in search_environment(local=True).items():  # as a search runs
        os.environ.setdefault(key, value)
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_config=ray.LoggingConfig(log_level="WARNING"))
    ray_start = time.perf_counter() - started
    print(f"ray.init: {ray_start:.1f} s (once per search)", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as scratch:
        for epochs in args.epochs:
            rows += measure(epochs, args, Path(scratch))
    marginal = per_epoch(rows, min(args.epochs), max(args.epochs)) if len(args.epochs) > 1 else []
    for row in marginal:
        print(
            f"per extra epoch {row['case']:<30} {row['seconds_per_epoch']:6.2f} s "
            f"overhead {100 * row['overhead_vs_bare']:+6.1f} %"
        )
    write_report(args.out, ray_init_s=ray_start, rows=rows, per_epoch=marginal)


if __name__ == "__main__":
    main()
