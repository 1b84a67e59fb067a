"""``fracture-tune data prepare | synth | info``.

Handlers import the data modules lazily so ``fracture-tune --help`` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.data.prepare_settings import DATASET_KEYS, DEFAULT_CACHE_ROOT, PrepareSettings
from fracture_tune.errors import FractureTuneError

if TYPE_CHECKING:
    from fracture_tune.data.report import PrepareReport

DEFAULTS = PrepareSettings()
# `data prepare`'s flags that set a cache's settings: (flag, its key in a search config's dataset section,
# help). An unset flag is None, so that --config's value fills it.
SETTING_FLAGS = (
    ("--out", "cache_root", "cache root"),
    ("--size", "image_size", "square image size in pixels"),
    ("--val", "val_fraction", "validation fraction"),
    ("--test", "test_fraction", "test fraction"),
    ("--seed", "split_seed", "split seed"),
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``data`` and its subcommands."""
    data_parser = subparsers.add_parser("data", help="prepare, generate and inspect datasets")
    data_parser.set_defaults(handler=lambda _args: _print_help(data_parser))
    data_commands = data_parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    _register_prepare(data_commands)
    _register_synth(data_commands)
    info = data_commands.add_parser(
        "info", help="describe a prepared dataset, or list the prepared datasets of a cache root"
    )
    info.add_argument(
        "dir",
        metavar="DIR",
        help=f"a prepared cache folder (<out>/<key>) or a cache root (<out>: {DEFAULT_CACHE_ROOT})",
    )
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
    prepare.add_argument(
        "--config",
        metavar="NAME_OR_YAML",
        help="take --size, --val, --test, --seed and --out from this search config's dataset section (a "
        "shipped config's name or a YAML path), so that a search with it reuses the cache; flags given "
        "here win",
    )
    for flag, key, text in SETTING_FLAGS:
        name, kind = DATASET_KEYS[key]
        default = getattr(DEFAULTS, name)
        prepare.add_argument(
            flag, type=kind, default=None, help=f"{text} (default: {default}, or the config's dataset.{key})"
        )
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
    from fracture_tune.data.prepare_settings import settings_from_config

    label_map = build_label_map(args.positive, args.negative) or None
    from_config = settings_from_config(args.config) if args.config else None
    settings = _with_flags(from_config or DEFAULTS, args)
    result = prepare_dataset(
        args.src,
        cache_root=settings.cache_root,
        image_size=settings.image_size,
        val_fraction=settings.val_fraction,
        test_fraction=settings.test_fraction,
        seed=settings.seed,
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
    if from_config is not None:
        print(f"next: {shlex.join(_search_command(args.config, args.src, from_config, settings))}")
    else:
        print(
            f"a search reuses this cache when its config has dataset {settings.as_dataset_section()} "
            "(`data prepare SRC --config NAME` takes them from a search config)"
        )
    return 0


def _search_command(config: str, src: str, from_config: PrepareSettings, used: PrepareSettings) -> list[str]:
    """The search of ``config`` on ``src`` that reuses this cache: ``--set`` each setting a flag changed."""
    command = ["fracture-tune", "search", "--config", config, "--set", f"dataset.path={src}"]
    for key, (name, _kind) in DATASET_KEYS.items():
        if getattr(used, name) != getattr(from_config, name):
            command += ["--set", f"dataset.{key}={getattr(used, name)}"]
    return command


def _with_flags(settings: PrepareSettings, args: argparse.Namespace) -> PrepareSettings:
    """``settings`` with each value replaced by its flag where one was given."""
    given = {DATASET_KEYS[key][0]: getattr(args, flag.removeprefix("--")) for flag, key, _ in SETTING_FLAGS}
    return dataclasses.replace(
        settings, **{name: value for name, value in given.items() if value is not None}
    )


def run_synth(args: argparse.Namespace) -> int:
    from fracture_tune.data.synth import generate_synthetic_dataset

    out = generate_synthetic_dataset(args.out, n=args.n, seed=args.seed, size=args.size)
    print(f"wrote {args.n} synthetic radiographs to {out} (Fractured/, Non_fractured/)")
    print(f"next: fracture-tune data prepare {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from fracture_tune.data.cache import is_complete, prepared_datasets
    from fracture_tune.data.prepare import load_prepared, load_report

    folder = Path(args.dir)
    if not is_complete(folder):
        inside = prepared_datasets(folder)
        if not inside:
            raise FractureTuneError(
                f"{args.dir!r} is neither a prepared dataset nor a cache root holding one"
                + ("" if folder.exists() else " (no such folder)"),
                hint=_info_hint(),
            )
        return _list_datasets(folder, inside)
    dataset = load_prepared(folder)
    report = load_report(folder)
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


def _list_datasets(root: Path, folders: list[Path]) -> int:
    """One line per prepared dataset of a cache root: key, image size, counts, source."""
    import json

    from fracture_tune.data.cache import META_FILE
    from fracture_tune.data.prepare import load_report

    print(f"cache root {root}: {len(folders)} prepared dataset{'s' if len(folders) > 1 else ''}")
    for folder in folders:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        report = load_report(folder)
        classes = ", ".join(f"{name} {count}" for name, count in report.class_counts.items())
        splits = ", ".join(f"{name} {sum(counts.values())}" for name, counts in report.split_counts.items())
        print(
            f"  {folder.name}  {meta['image_size']:>4} px  {meta['n_images']} images ({classes}; {splits}), "
            f"{len(report.rejected)} rejected  from {report.source}"
        )
    print(f"one in detail: fracture-tune data info {root / '<key>'}")
    return 0


def _info_hint() -> str:
    from fracture_tune.data.cache import prepared_datasets

    found = len(prepared_datasets(DEFAULT_CACHE_ROOT))
    here = f"; the one here holds {found} dataset{'s' if found > 1 else ''}" if found else ""
    return (
        "pass a dataset folder `data prepare` printed (<out>/<key>) or a cache root (its --out, default "
        f"{DEFAULT_CACHE_ROOT}{here}); to prepare images: fracture-tune data prepare SRC"
    )


def _print_dataset_tables(report: PrepareReport) -> None:
    print("classes: " + ", ".join(f"{name} {count}" for name, count in report.class_counts.items()))
    print("\n".join(report.split_table()))
