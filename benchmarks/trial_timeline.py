"""Where the time between two trials goes: driver and trainable timestamps for a reused-actor search.

    python benchmarks/trial_timeline.py --trials 8 [--out timeline.json]

The full ``fracture-tune search`` stack (the project's trainable, MLflow and progress callbacks, a scratch
SQLite store) runs ``--trials`` identical 1-epoch quickstart trials one at a time with ``reuse_actors``. A
Tune callback stamps trial start / result / complete on the driver; a wrapper around the trainable stamps its
first and last line in the worker (same machine, same clock). Prints each event with the seconds since the
previous one, then the medians of: trainable start → first result (the trial's own work) and trial complete
→ next trainable start (what Tune, MLflow and the actor reset add between trials).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_report import write_report
from overhead import fixed_config
from ray import tune

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.search.run import (
    SearchOptions,
    open_parent_run,
    prepare_search_dataset,
    search_callbacks,
    search_environment,
)
from fracture_tune.search.tuner import build_run_config, build_searcher, fixed_trial_values
from fracture_tune.trainables.tune_adapter import train_trial

EVENTS = Path(tempfile.mkdtemp(prefix="bench-timeline-")) / "events.jsonl"


def _stamp(event: str) -> None:
    with EVENTS.open("a") as stream:
        stream.write(json.dumps({"event": event, "time": time.time()}) + "\n")


def stamped_trial(config: dict[str, Any], data: DatasetArrays) -> None:
    _stamp("trainable_start")
    try:
        train_trial(config, data)
    finally:
        _stamp("trainable_end")


class DriverStamps(tune.Callback):
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _stamp("trial_start")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        _stamp("result")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        _stamp("trial_complete")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--out", type=Path, help="write the events and medians as JSON here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for key, value in search_environment(local=True).items():  # as a search runs
        os.environ.setdefault(key, value)
    import ray
    from ray.tune.schedulers import ASHAScheduler

    ray.init(num_cpus=2, include_dashboard=False, logging_config=ray.LoggingConfig(log_level="WARNING"))
    config = fixed_config(1, args.trials)
    prepared = prepare_search_dataset(config)
    scratch = EVENTS.parent
    tracking_uri = f"sqlite:///{scratch / 'mlflow.db'}"
    options = SearchOptions(name="timeline", storage=scratch, tracking_uri=tracking_uri)
    parent = open_parent_run(config, options, prepared)
    callbacks = [DriverStamps(), *search_callbacks(config, options, parent)]
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(stamped_trial, data=prepared.dataset.arrays), {"cpu": 1}),
        param_space=fixed_trial_values(config),
        tune_config=tune.TuneConfig(
            metric=config.metric,
            mode=config.metric_mode,
            search_alg=build_searcher(config),
            scheduler=ASHAScheduler(time_attr="training_iteration", grace_period=1, max_t=1),
            num_samples=args.trials,
            max_concurrent_trials=1,
            reuse_actors=True,
        ),
        run_config=build_run_config(config, "timeline", scratch, callbacks),
    )
    started = time.time()
    try:
        tuner.fit()
        events = [json.loads(line) for line in EVENTS.read_text().splitlines()]
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)  # Tune's checkpoints and the MLflow store: ~50 MB a run
    search_seconds = time.time() - started
    summary = summarise(events, started)
    for event in summary["events"]:
        print(f"{event['event']:>15} +{event['since_previous_s']:6.3f} s")
    print(
        f"trainable start -> result: median {summary['trainable_start_to_result_median_s']:.3f} s "
        f"(first {summary['trainable_start_to_result_first_s']:.3f} s)"
    )
    between = summary["complete_to_next_start_median_s"]
    print(f"trial complete -> next trainable start: median {between:.3f} s")
    print(f"search: {search_seconds:.1f} s for {args.trials} trials")
    write_report(args.out, trials=args.trials, search_seconds=search_seconds, **summary)


def summarise(events: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """Each event with the seconds since the one before (the first: since the Tuner started), and the
    medians of a trial's own work (trainable start -> result) and of the gap between trials (complete ->
    next trainable start)."""
    times = [started, *(event["time"] for event in events)]
    work = [
        b["time"] - a["time"]
        for a, b in zip(events, events[1:], strict=False)
        if a["event"] == "trainable_start" and b["event"] == "result"
    ]
    completes = [e["time"] for e in events if e["event"] == "trial_complete"]
    starts = [e["time"] for e in events if e["event"] == "trainable_start"]
    between = [start - complete for complete, start in zip(completes, starts[1:], strict=False)]
    return {
        "events": [
            {"event": event["event"], "since_previous_s": event["time"] - previous}
            for event, previous in zip(events, times, strict=False)
        ],
        "trainable_start_to_result_median_s": statistics.median(work),
        "trainable_start_to_result_first_s": work[0],
        "complete_to_next_start_median_s": statistics.median(between),
    }


if __name__ == "__main__":
    main()
