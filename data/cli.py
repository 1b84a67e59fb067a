"""``fracture-tune data prepare | synth | info``.

Handlers import the data modules lazily so ``fracture-tune --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fracture_tune.data.report import PrepareReport

DEFAULT_CACHE_ROOT = ".fracture-tune/datasets"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``data`` and its subcommands."""
    data_parser = subparsers.add_parser("data", help="prepare, generate and inspect datasets")
    data_parser.set_defaults(handler=lambda _args: _print_help(data_parser))
    data_commands = data_parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    _register_prepare(data_commands)
    _register_synth(data_commands)
    info = data_commands.add_parser("info", help="describe a prepared dataset cache folder")
    info.add_argument("dir", metavar="DIR", help="a prepared cache folder (<out>/<key>)")
    info.set_defaults(handler=run_info)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _register_prepare(data_commands: argparse._SubParsersAction[Any]) -> None:
    prepare = data_commands.add_parser(
        "prepare",
        help="decode, validate, dedupe and split an image folder or CSV manifest into a cached dataset",
        description="SRC is a folder with one sub-folder per class "
        "(Fractured/, Non_fractured/, normal/, ...) "
        "or a CSV manifest with columns path,label[,group] (paths relative to the CSV).",
    )
    prepare.add_argument("src", metavar="SRC", help="class-folder tree or CSV manifest")
    prepare.add_argument("--out", default=DEFAULT_CACHE_ROOT, help="cache root (default: %(default)s)")
    prepare.add_argument(
        "--size", type=int, default=128, help="square image size in pixels (default: %(default)s)"
    )
    prepare.add_argument("--val", type=float, default=0.15, help="validation fraction (default: %(default)s)")
    prepare.add_argument("--test", type=float, default=0.15, help="test fraction (default: %(default)s)")
    prepare.add_argument("--seed", type=int, default=0, help="split seed (default: %(default)s)")
    prepare.add_argument("--strict", action="store_true", help="fail if any file is rejected or conflicting")
    prepare.add_argument(
        "--positive",
        action="append",
        default=[],
        metavar="NAME",
        help="class name meaning fractured (repeatable)",
    )
    prepare.add_argument(
        "--negative",
        action="append",
        default=[],
        metavar="NAME",
        help="class name meaning not fractured (repeatable)",
    )
    prepare.add_argument("--workers", type=int, default=None, help="decoding processes (default: all cores)")
    prepare.set_defaults(handler=run_prepare)


def _register_synth(data_commands: argparse._SubParsersAction[Any]) -> None:
    synth = data_commands.add_parser(
        "synth", help="write a synthetic radiograph dataset (Fractured/ and Non_fractured/ image folders)"
    )
    synth.add_argument("out", metavar="OUT", help="folder to write (created; must be empty or absent)")
    synth.add_argument("--n", type=int, default=600, help="number of images (default: %(default)s)")
    synth.add_argument("--seed", type=int, default=0, help="generator seed (default: %(default)s)")
    synth.add_argument("--size", type=int, default=256, help="nominal image size (default: %(default)s)")
    synth.set_defaults(handler=run_synth)


def run_prepare(args: argparse.Namespace) -> int:
    from fracture_tune.data.labels import build_label_map
    from fracture_tune.data.prepare import prepare_dataset

    label_map = build_label_map(args.positive, args.negative) or None
    result = prepare_dataset(
        args.src,
        cache_root=args.out,
        image_size=args.size,
        val_fraction=args.val,
        test_fraction=args.test,
        seed=args.seed,
        strict=args.strict,
        label_map=label_map,
        workers=args.workers,
    )
    report = result.report
    state = "cache hit: reused, not rebuilt" if result.cache_hit else "prepared (new cache)"
    print(f"{state}: {result.cache_dir}")
    print(
        f"{report.prepared} images ready, {len(report.rejected)} rejected, "
        f"{sum(len(c['paths']) for c in report.conflicts)} in label conflicts, "
        f"{len(report.duplicate_groups)} duplicate groups, {len(report.ignored)} ignored"
    )
    _print_dataset_tables(report)
    print(f"dataset key: {result.dataset.key}  split hash: {result.dataset.split_hash[:16]}")
    print(f"full report: {result.cache_dir / 'report.txt'}")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from fracture_tune.data.synth import generate_synthetic_dataset

    out = generate_synthetic_dataset(args.out, n=args.n, seed=args.seed, size=args.size)
    print(f"wrote {args.n} synthetic radiographs to {out} (Fractured/, Non_fractured/)")
    print(f"next: fracture-tune data prepare {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from fracture_tune.data.prepare import load_prepared, load_report

    dataset = load_prepared(args.dir)
    report = load_report(args.dir)
    print(f"cache: {dataset.root}")
    print(f"dataset key: {dataset.key}  split hash: {dataset.split_hash}")
    print(f"source: {report.source} ({report.kind}); image size {dataset.arrays.image_size}")
    print(
        f"images: {len(dataset.arrays.labels)}; rejected {len(report.rejected)}; "
        f"ignored {len(report.ignored)}"
    )
    _print_dataset_tables(report)
    for item in report.rejected:
        print(f"  rejected {item['path']}: {item['reason']}")
    for conflict in report.conflicts:
        print(f"  conflict {' = '.join(conflict['paths'])}: {conflict['reason']}")
    return 0


def _print_dataset_tables(report: PrepareReport) -> None:
    print("classes: " + ", ".join(f"{name} {count}" for name, count in report.class_counts.items()))
    print("\n".join(report.split_table()))
