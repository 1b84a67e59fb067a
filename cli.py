"""`fracture-tune`: one CLI, subcommands, exit codes: a thin layer over the Python API.

Each area registers its own subcommands (``register(subparsers)``) and keeps heavy imports (torch, ray,
mlflow) inside the handlers, so ``fracture-tune --help`` starts fast. Handlers call the same functions
``import fracture_tune`` offers, with progress printed; a ``FractureTuneError`` becomes ``error:`` /
``hint:`` lines and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from fracture_tune.errors import FractureTuneError
from fracture_tune.version import package_version

# Modules that add subcommands; each exposes register(subparsers) and sets `handler` on its parsers.
COMMAND_MODULES: tuple[str, ...] = (
    "fracture_tune.data.cli",
    "fracture_tune.search.search_cli",
    "fracture_tune.search.retrain.cli",
    "fracture_tune.classifier.cli",
    "fracture_tune.cluster.cli",
    "fracture_tune.search.demo_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fracture-tune",
        description="Distributed hyperparameter search for X-ray fracture classifiers "
        "(Ray Tune + Optuna TPE + ASHA, tracked in MLflow).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"fracture-tune {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    # What every handler may use without importing this module: the subcommands (`submit` checks the
    # command it sends) and the command line itself (`demo` runs `search` and `retrain` through it).
    parser.set_defaults(subcommands=frozenset(subparsers.choices), cli_main=main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except FractureTuneError as error:
        print(f"error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"hint: {error.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fracture-tune search show X | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
