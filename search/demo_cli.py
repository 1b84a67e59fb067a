"""`fracture-tune demo`: the quickstart end to end on the embedded synthetic dataset.

It runs the same subcommands a user would type (search, then retrain), so the demo can never drift from
the real commands, and prints where to look afterwards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError

DEFAULT_CONFIG = "quickstart"  # a shipped config (package data), found from any folder


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate a synthetic radiograph set, search, retrain the best trial, print where to look",
    )
    parser.add_argument(
        "--config",
        default=DEFAULT_CONFIG,
        help="experiment YAML or a shipped config's name (default %(default)s)",
    )
    parser.add_argument("--name", default=None, help="search name (default: demo-<timestamp>)")
    parser.add_argument("--retrain-epochs", type=int, default=30, help="epochs for the final retrain")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default: sqlite:///mlflow.db)"
    )
    parser.set_defaults(handler=run_demo)


def _run(args: argparse.Namespace, argv: list[str]) -> None:
    """Run ``fracture-tune ARGV`` through the command line that called the demo (``args.cli_main``)."""
    print(f"\n$ fracture-tune {' '.join(argv)}", flush=True)
    status = args.cli_main(argv)
    if status != 0:
        raise FractureTuneError(
            f"`fracture-tune {' '.join(argv)}` failed with exit status {status}",
            hint="read the error above; rerun that command on its own to debug it",
        )


def run_demo(args: argparse.Namespace) -> int:
    from fracture_tune.data.prepare_settings import config_path
    from fracture_tune.search.optuna_study import dashboard_command
    from fracture_tune.search.run import load_search

    config = config_path(args.config)
    name = args.name or time.strftime("demo-%Y%m%d-%H%M%S")
    tracking = ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
    started = time.monotonic()
    _run(args, ["search", "--config", str(config), "--name", name, *tracking])
    _run(args, ["retrain", "--search", name, "--epochs", str(args.retrain_epochs), *tracking])
    minutes = (time.monotonic() - started) / 60
    run_dir = Path(".fracture-tune") / "runs" / name
    search = load_search(name)
    print(
        f"\nDemo finished in {minutes:.1f} min. Where to look:\n"
        f"  search results : fracture-tune search show {name}   ({run_dir}/results.csv)\n"
        f"  retrain report : {run_dir}/retrain/report.md  (plots beside it)\n"
        f"  MLflow runs    : {search.mlflow_runs_page()}\n"
        f"  Optuna study   : {dashboard_command(search.optuna_storage)}   (pip install optuna-dashboard)\n"
        "  predict        : fracture-tune predict IMAGE.png --model models:/fracture-classifier@champion\n",
        flush=True,
    )
    return 0
