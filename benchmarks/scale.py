"""Scale: the product's whole search path against bare Ray Tune, with training replaced by a fixed 1-s step.

    python benchmarks/scale.py --trials 100 1000 10000 --concurrency 16 --out <dir>

Per trial count N, in one run and alternating which goes first, two fresh processes each start a local Ray
with ``--concurrency`` logical CPUs and run N one-epoch trials, ``--concurrency`` at once, workers reused:

- ``bare``: Ray Tune alone — a function trainable that sleeps 1 s and reports once; no searcher, no callbacks,
  Tune's result loggers off (as Ray's "Scalability and overhead benchmarks" page);
- ``product``: ``fracture_tune.run_search_with`` on a tiny image folder — Optuna TPE in its RDB storage, ASHA,
  the MLflow mirror (SQLite), the stop records, the checkpoint keeper, progress, the results table, the
  records check and the report — with the engine replaced by ``one_second_step`` (``SearchOptions
  .fit_function``): sleep 1 s, report one epoch and a checkpoint, as the adapter does.

Figures per process, timed from Ray's start-up being done: wall s, wall / minimum (N x 1 s / concurrency),
driver CPU s per trial (user + system, all threads of the driver), peak driver RSS, bytes the driver
wrote per trial (/proc/self/io write_bytes), the experiment state's size, trials errored and, for the
product, whether the records agree. Each case runs in its own process (``--case``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_report import default_out, write_report

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP_S = 1.0


def one_second_step(
    config: dict[str, Any], data: Any, *, callbacks: Any = (), resume_state: Any = None
) -> None:
    """The engine's place in a trial: one 1-s "epoch", its metrics (a made-up AUROC from the trial's lr)
    and a snapshot of a few bytes, reported through the adapter like a real epoch."""
    import math

    time.sleep(STEP_S)
    lr = float(config.get("lr", 0.01))
    auroc = 0.5 + 0.4 * math.exp(-abs(math.log10(lr) + 2.5))  # best near lr 3e-3
    metrics = {"epoch": 1.0, "train_loss": 0.5, "val_loss": 0.5, "val_auroc": auroc, "val_accuracy": 0.5}
    for callback in callbacks:
        callback(metrics, lambda: {"epoch": 1, "history": [metrics], "model": {}})


def bare_trial(config: dict[str, Any]) -> None:
    from ray import tune

    time.sleep(STEP_S)
    tune.report({"score": config["x"]})


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _workers_started() -> int:
    """Worker processes the raylet started in this Ray session: 16 plus a few where workers are reused."""
    logs = Path(tempfile.gettempdir()) / "ray" / "session_latest" / "logs"
    texts = (log.read_text(errors="replace") for log in logs.glob("raylet*.out"))
    return sum(text.count("Started worker process") for text in texts)


def _start_ray(concurrency: int) -> None:
    import ray

    ray.init(
        num_cpus=concurrency,
        include_dashboard=False,
        log_to_driver=False,
        logging_config=ray.LoggingConfig(log_level="WARNING"),
    )


def run_bare(trials: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    from ray import tune

    from fracture_tune.search.run import search_environment

    # The same Ray settings as a search (no idle workers prestarted, Tune's result loggers off): the two
    # cases differ only by what the product adds.
    for key, value in search_environment(local=True).items():
        os.environ.setdefault(key, value)

    _start_ray(concurrency)
    started, cpu, written = time.monotonic(), time.process_time(), _written_bytes()
    # As Ray's own bookkeeping benchmark: the CPUs bound concurrency (16 CPUs, 1 a trial), not
    # ``max_concurrent_trials``. With that limit Ray's basic variant generator stages no trial while 16 run,
    # so a finished trial's worker has no pending trial to be cached for and is killed: measured at 10,000
    # trials, ~1 new worker process a second and 3.4 trials/s against 9 without the limit.
    tuner = tune.Tuner(
        bare_trial,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True, metric="score", mode="max"),
        run_config=tune.RunConfig(name="bare", storage_path=str(workdir / "runs"), verbose=0),
    )
    grid = tuner.fit()
    figures = _figures(started, cpu, written, trials, concurrency, workdir / "runs" / "bare")
    figures["errored"] = sum(1 for result in grid if result.error)
    return figures


def run_product(trials: int, concurrency: int, workdir: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO_ROOT / "tests" / "support"))
    from search_fixtures import write_line_dataset

    from fracture_tune.search.config import config_from_dict
    from fracture_tune.search.run import _search_call, _start_ray, make_options, run_search_with

    images = write_line_dataset(workdir / "images", per_class=30, size=32)
    config = config_from_dict(
        {
            "dataset": {
                "path": str(images),
                "image_size": 32,
                "val_fraction": 0.25,
                "test_fraction": 0.15,
                "cache_root": str(workdir / "datasets"),
            },
            "training": {
                "model": "tiny_cnn",
                "width": 4,
                "epochs": 1,
                "input_size": 32,
                "device": "cpu",
                "num_threads": 1,
            },
            "space": {
                "params": {
                    "lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
                    "batch_size": {"type": "categorical", "choices": [16, 32]},
                }
            },
            "searcher": {"seed": 0, "n_startup_trials": 2 * concurrency},
            "scheduler": {"grace_period": 1, "max_t": 1, "reduction_factor": 2},
            "resources": {"cpus_per_trial": 1, "max_concurrent_trials": concurrency, "reuse_actors": True},
            "budget": {"num_trials": trials},
            "tracking": {"experiment_name": "scale"},
        }
    )
    options = make_options(
        "scale",
        storage=workdir / "runs",
        tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}",
        num_cpus=concurrency,
    )
    options.fit_function = one_second_step
    with _search_call(options):
        _start_ray(options)  # timed from here, as the bare case
        started, cpu, written = time.monotonic(), time.process_time(), _written_bytes()
        result = run_search_with(config, options)
    figures = _figures(started, cpu, written, trials, concurrency, options.run_dir)
    figures["errored"] = int((result.results["status"] == "error").sum())
    figures["statuses"] = result.results["status"].value_counts().to_dict()
    records = json.loads((options.run_dir / "reconciliation.json").read_text())
    figures["records_agree"] = records["agree"]
    figures["record_differences"] = len(records["differences"])
    return figures


def _figures(started: float, cpu: float, written: int, trials: int, concurrency: int, run_dir: Path) -> dict:
    wall = time.monotonic() - started
    states = sorted(Path(run_dir).glob("experiment_state-*.json"))
    minimum = trials * STEP_S / concurrency
    return {
        "trials": trials,
        "concurrency": concurrency,
        "wall_s": round(wall, 1),
        "minimum_s": minimum,
        "wall_over_minimum": round(wall / minimum, 3),
        "driver_cpu_s_per_trial": round((time.process_time() - cpu) / trials, 4),
        "peak_driver_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "driver_bytes_written_per_trial": int((_written_bytes() - written) / trials),
        "experiment_state_bytes": states[-1].stat().st_size if states else 0,
        "run_folder_bytes": sum(item.stat().st_size for item in Path(run_dir).rglob("*") if item.is_file()),
        "workers_started": _workers_started(),
    }


def run_case(case: str, trials: int, concurrency: int) -> dict[str, Any]:
    """One case in a fresh process (Ray, Optuna and MLflow state never carry over between cases)."""
    with tempfile.TemporaryDirectory(prefix=f"scale-{case}-{trials}-") as folder:
        command = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--trials",
            str(trials),
            "--concurrency",
            str(concurrency),
            "--workdir",
            folder,
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": ""}
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
        if done.returncode != 0:
            raise SystemExit(f"{case} x{trials} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def compare(trials: list[int], concurrency: int, repeats: int) -> list[dict[str, Any]]:
    rows = []
    for repeat in range(repeats):
        for index, count in enumerate(trials):
            order = ["bare", "product"] if (index + repeat) % 2 == 0 else ["product", "bare"]
            cases = {case: run_case(case, count, concurrency) for case in order}
            row = {"repeat": repeat, "trials": count, "order": order, **cases}
            row["product_over_bare"] = round(cases["product"]["wall_s"] / cases["bare"]["wall_s"], 3)
            rows.append(row)
            print(_line(row), flush=True)
    return rows


def _line(row: dict[str, Any]) -> str:
    bare, product = row["bare"], row["product"]

    def pair(key: str, form: str) -> str:
        return f"{bare[key]:{form}} / {product[key]:{form}}"

    return (
        f"{row['trials']:>6} trials: bare {bare['wall_s']:.1f} s ({bare['wall_over_minimum']:.2f}x min), "
        f"product {product['wall_s']:.1f} s ({product['wall_over_minimum']:.2f}x min, "
        f"{row['product_over_bare']:.3f}x bare); bare / product: driver CPU s/trial "
        f"{pair('driver_cpu_s_per_trial', '.4f')}; "
        f"written B/trial {pair('driver_bytes_written_per_trial', ',')}; "
        f"peak RSS MB {pair('peak_driver_rss_mb', '')}; "
        f"workers started {pair('workers_started', '')}; errored {pair('errored', '')}; "
        f"records agree: {product['records_agree']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--case", choices=["bare", "product"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # one case, in this process: print its figures as the last line
        run = run_bare if args.case == "bare" else run_product
        print(json.dumps(run(args.trials[0], args.concurrency, args.workdir)))
        return
    rows = compare(args.trials, args.concurrency, args.repeats)
    write_report(args.out or default_out("scale"), step_s=STEP_S, rows=rows)


if __name__ == "__main__":
    main()
