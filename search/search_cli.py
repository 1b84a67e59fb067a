"""``fracture-tune search``: run, resume, show and backfill a hyperparameter search.

fracture-tune search --config configs/quickstart.yaml [--name N] [--set key=value ...]
fracture-tune search --resume N
fracture-tune search show N
fracture-tune search sync-mlflow N
fracture-tune search check N
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.records import DEFAULT_RUNS_ROOT

# Run on `--address` before a search connects to Ray, by name. The `cluster` commands install the one that
# lets `--address` name the cluster `cluster up` started without exporting its token
# (``fracture_tune.cluster.cli.register``); the search itself knows nothing of that cluster.
ADDRESS_HOOKS: dict[str, Callable[[str | None], object]] = {}

ACTIONS = ("show", "sync-mlflow", "check")


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``search``."""
    parser = subparsers.add_parser(
        "search",
        help="run a distributed hyperparameter search (or: search show|sync-mlflow NAME)",
        description="Ray Tune + Optuna TPE + ASHA search, every trial logged to MLflow.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        choices=ACTIONS,
        help="show: print a finished search's results; "
        "sync-mlflow: backfill MLflow from Tune's results on disk; "
        "check: compare the search's records (results, stop records, MLflow, the Optuna study, best trial)",
    )
    parser.add_argument(
        "target", nargs="?", metavar="NAME", help="search name for show / sync-mlflow / check"
    )
    parser.add_argument(
        "--config", help="experiment YAML, or a shipped config's name (quickstart, fracatlas, ...)"
    )
    parser.add_argument("--name", help="search name (default: <config>-<timestamp>)")
    parser.add_argument("--resume", metavar="NAME", help="continue an interrupted search")
    parser.add_argument("--address", help="Ray cluster: auto | ray://host:10001 | host:6379 (default: local)")
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set budget.num_trials=4 (repeatable)",
    )
    parser.add_argument("--storage", default=str(DEFAULT_RUNS_ROOT), help="runs root (default: %(default)s)")
    parser.add_argument("--num-cpus", type=int, help="CPUs for a local Ray instance (default: all)")
    parser.add_argument(
        "--dashboard",
        action="store_true",
        help="start Ray's dashboard with the local Ray (127.0.0.1, token auth; off by default)",
    )
    parser.set_defaults(handler=handle_search)


def _api_options(args: argparse.Namespace) -> dict[str, Any]:
    for hook in ADDRESS_HOOKS.values():
        hook(args.address)
    return {
        "storage": Path(args.storage),
        "address": args.address,
        "tracking_uri": args.tracking_uri,
        "num_cpus": args.num_cpus,
        "progress": True,
        "dashboard": args.dashboard,
    }


def handle_search(args: argparse.Namespace) -> int:
    from fracture_tune.search.run import SearchFailed

    if args.action:
        if not args.target:
            raise FractureTuneError(
                f"`search {args.action}` needs a search NAME",
                hint=f"fracture-tune search {args.action} quickstart",
            )
        return {"show": show, "sync-mlflow": _sync, "check": check}[args.action](args)
    try:
        _run_or_resume(args)
    except SearchFailed as failed:
        print(f"error: {failed.message}", file=sys.stderr)
        if failed.hint:
            print(f"hint: {failed.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130  # the search said how to resume it
    return 0


def _run_or_resume(args: argparse.Namespace) -> None:
    from fracture_tune.search.run import resume_search, run_search

    if args.resume:
        if args.config or args.overrides:
            raise FractureTuneError(
                "--resume continues a search with its saved config; --config/--set cannot change it",
                hint="start a new search to change the config",
            )
        resume_search(args.resume, **_api_options(args))
        return
    if not args.config:
        raise FractureTuneError(
            "search needs --config (or --resume NAME)",
            hint="fracture-tune search --config quickstart   (a shipped config's name, or a YAML path)",
        )
    from fracture_tune.search.config import load_config

    config = load_config(args.config, args.overrides)  # validated before Ray starts
    name = args.name or f"{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_search(config, name=name, **_api_options(args))


def _sync(args: argparse.Namespace) -> int:
    from fracture_tune.search.run import sync_mlflow

    sync_mlflow(args.target, storage=Path(args.storage), tracking_uri=args.tracking_uri, progress=True)
    return 0


def check(args: argparse.Namespace) -> int:
    """Exit 0 when the search's records agree, 1 when they do not (each difference printed)."""
    from fracture_tune.search.run import check_search

    report = check_search(args.target, storage=Path(args.storage), tracking_uri=args.tracking_uri)
    print(report.summary(limit=200))
    if not report.agree:
        print(f"hint: MLflow differences: fracture-tune search sync-mlflow {args.target}", file=sys.stderr)
    return 0 if report.agree else 1


def show(args: argparse.Namespace) -> int:
    from fracture_tune.search.optuna_study import dashboard_command
    from fracture_tune.search.run import load_search

    search = load_search(args.target, storage=Path(args.storage))
    print(f"search {search.name} [{search.status}]  {search.run_dir}")
    print(f"  dataset {search.dataset_key} split {search.split_hash}  metric {search.metric} ({search.mode})")
    print(
        f"  MLflow {search.tracking_uri}  experiment {search.experiment_id}  "
        f"parent run {search.parent_run_id}"
    )
    if search.optuna_storage:
        print(f"  Optuna study {search.name}: {dashboard_command(search.optuna_storage)}")
    if search.results.empty:
        print("  no results yet (the search has not finished; resume it with --resume)")
        return 0
    print(search.summary())
    best = search.best_trial
    if best is not None:
        print(
            f"best trial {best.trial_id}: {best.metric}={best.metric_value:.4f} at epoch {best.best_epoch} "
            f"of {best.epochs_run}; checkpoint {best.checkpoint_path or '(none kept)'}"
        )
    _print_report(search.run_dir)
    return 0


def _print_report(run_dir: Path) -> None:
    """What mattered and whether the records agree, as the search's end wrote them."""
    import json

    from fracture_tune.search.reconcile import RECONCILIATION_FILE
    from fracture_tune.search.search_report import REPORT_FILE, REPORT_FOLDER, read_importance

    table = read_importance(run_dir)
    if table is not None:
        print(table.to_text())
    try:
        records = json.loads((run_dir / RECONCILIATION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    differences = len(records.get("differences", []))
    print(
        "records agree" if records.get("agree") else f"records disagree: {differences} difference(s)",
        f"(checked at the search's end; recheck: fracture-tune search check {run_dir.name})",
    )
    print(f"report: {run_dir / REPORT_FOLDER / REPORT_FILE}")
