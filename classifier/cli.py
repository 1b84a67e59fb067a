"""`fracture-tune predict | evaluate | export`: use a trained model.

A thin layer over the library calls (``load_classifier``, ``evaluate_folder``, ``export_classifier``) that
prints their results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError

DEFAULT_MODEL = "models:/fracture-classifier@champion"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands."""
    _add_predict(subparsers)
    _add_evaluate(subparsers)
    _add_export(subparsers)


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a local model "
        f"folder (default {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db)",
    )
    parser.add_argument(
        "--skip-hash-check",
        action="store_true",
        help="load a model whose weights retrain did not record (a model from elsewhere): skips only the "
        "sha256 comparison with retrain's record; weights are still loaded without running code",
    )


def _load_model(args: argparse.Namespace) -> Any:
    from fracture_tune.classifier.predict import load_classifier

    if args.skip_hash_check:
        print(
            f"warning: --skip-hash-check: {args.model} is loaded without comparing its weights' sha256 with "
            "a record from retrain",
            file=sys.stderr,
        )
    return load_classifier(args.model, args.tracking_uri, verify=not args.skip_hash_check)


def _add_predict(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("predict", help="score image files with a trained model")
    parser.add_argument("inputs", nargs="+", metavar="IMAGES_OR_DIRS", help="image files and/or folders")
    _add_model_args(parser)
    parser.add_argument("--out", type=Path, help="write the table to a .csv or .json file too")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's registered one")
    parser.add_argument("--explain", type=Path, metavar="OUT_DIR", help="write Grad-CAM overlays (PNG) here")
    parser.set_defaults(handler=run_predict_command)


def run_predict_command(args: argparse.Namespace) -> int:
    from fracture_tune.classifier.predict import (
        expand_inputs,
        format_table,
        predict_files,
        write_explanations,
        write_predictions,
    )

    paths = expand_inputs(args.inputs)
    _check_some_input_exists(paths)
    classifier = _load_model(args)
    rows, images, good_rows = predict_files(classifier, paths, args.threshold)
    print(format_table(rows))
    threshold = classifier.threshold if args.threshold is None else args.threshold
    print(
        f"\n{len(good_rows)} of {len(rows)} files predicted (threshold {threshold:.4f}, model {args.model})"
    )
    if args.out:
        print(f"wrote {write_predictions(rows, args.out)}")
    if args.explain and good_rows:
        written = write_explanations(classifier, rows, images, good_rows, args.explain)
        print(f"wrote {len(written)} Grad-CAM overlays to {args.explain}")
    if not good_rows:
        first = next((f"{row.path}: {row.reason}" for row in rows if row.reason), "no image files given")
        print(f"error: none of the {len(rows)} file(s) could be read as an image ({first})", file=sys.stderr)
        print(
            "hint: pass PNG/JPEG/TIFF/BMP radiographs or folders of them; export PDF or DICOM pages "
            "to PNG first",
            file=sys.stderr,
        )
        return 1
    return 0


def _check_some_input_exists(paths: list[Path]) -> None:
    """Fail before loading the model when no path given exists (a typo, or a pattern the shell matched to
    nothing); with some that exist, the missing ones are rows of the table."""
    missing = [path for path in paths if not path.exists()]
    if not missing or len(missing) < len(paths):
        return
    shown = ", ".join(repr(str(path)) for path in missing[:3])
    if len(missing) > 3:
        shown += f" and {len(missing) - 3} more"
    if any(char in str(path) for path in missing for char in "*?["):
        hint = "the shell matched no file to the pattern and passed it as it is: check the pattern and folder"
    else:
        relative = any(not path.is_absolute() for path in missing)
        where = f" (relative paths resolve from the current folder, {Path.cwd()})" if relative else ""
        hint = f"check the path{where}; pass image files (PNG, JPEG, TIFF, BMP) or folders of them"
    message = (
        f"no such file or folder: {shown}"
        if len(missing) == 1
        else f"none of the paths given exists: {shown}"
    )
    raise FractureTuneError(message, hint=hint)


def _add_evaluate(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="metrics with CIs on a labelled folder (class sub-folders)"
    )
    _add_model_args(parser)
    parser.add_argument(
        "--data", type=Path, required=True, help="folder of class sub-folders, or a CSV manifest"
    )
    parser.add_argument("--positive", action="append", default=[], help="class name meaning fractured")
    parser.add_argument("--negative", action="append", default=[], help="class name meaning not fractured")
    parser.add_argument("--threshold", type=float, default=None, help="default: the model's registered one")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--out", type=Path, help="write metrics and per-file rows as JSON")
    parser.set_defaults(handler=run_evaluate_command)


def run_evaluate_command(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from fracture_tune.classifier.evaluation import format_intervals, intervals_as_dict
    from fracture_tune.classifier.predict import evaluate_folder
    from fracture_tune.data.labels import build_label_map

    classifier = _load_model(args)
    label_map = build_label_map(args.positive, args.negative) or None
    result = evaluate_folder(
        classifier, args.data, label_map=label_map, threshold=args.threshold, n_resamples=args.resamples
    )
    skipped = [row for row in result.rows if row.status != "ok"]
    print(
        f"{len(result.labels)} images ({int(result.labels.sum())} positive) at threshold "
        f"{result.threshold:.4f}; 95 % stratified bootstrap CIs:"
    )
    print("\n".join(format_intervals(result.intervals)))
    print(f"confusion: {result.counts}")
    for row in skipped:
        print(f"skipped {row.path}: {row.reason}")
    if args.out:
        payload = {
            "model": args.model,
            "data": str(args.data),
            "threshold": result.threshold,
            "metrics": intervals_as_dict(result.intervals),
            "confusion": asdict(result.counts),
            "rows": [asdict(row) for row in result.rows],
        }
        Path(args.out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


def _add_export(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "export", help="export a model (torch.export .pt2; TorchScript or ONNX on request), verified"
    )
    _add_model_args(parser)
    parser.add_argument(
        "--format",
        choices=("pt2", "torchscript", "onnx"),
        default="pt2",
        help="pt2: torch.export, load with torch.export.load(FILE).module() (default); torchscript: "
        "deprecated by torch, for LibTorch/C++ loaders; onnx: needs pip install 'fracture-tune[onnx]'",
    )
    parser.add_argument("--out", type=Path, required=True, help="model.pt2 / model.pt / model.onnx")
    parser.set_defaults(handler=run_export_command)


def run_export_command(args: argparse.Namespace) -> int:
    from fracture_tune.classifier.export import export_classifier

    result = export_classifier(_load_model(args), args.format, args.out)
    print(
        f"wrote {result.path} ({result.format}; max abs difference to the eager model "
        f"{result.max_abs_diff:.2g}) and {result.sidecar} (preprocessing, classes, threshold)"
    )
    return 0
