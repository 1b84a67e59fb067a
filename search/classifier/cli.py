"""`fracture-tune retrain | predict | evaluate | export`: from the search's winner to a usable model.

A thin layer over the library calls (``retrain``, ``load_classifier``…) that prints their results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fracture_tune.search.classifier.evaluation import MetricInterval

DEFAULT_MODEL = "models:/fracture-classifier@champion"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add this area's subcommands."""
    _add_retrain(subparsers)
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


def _add_retrain(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "retrain", help="train the best trial for the full schedule, test it once, register it"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--search", help="search name: retrain its best trial (best_trial.json)")
    source.add_argument("--run-id", help="MLflow run id of a trial of a search: retrain that trial")
    source.add_argument("--config-json", type=Path, help="a flat engine config (JSON); needs --dataset")
    parser.add_argument("--dataset", type=Path, help="prepared dataset folder (default: the search's)")
    parser.add_argument("--storage", type=Path, help="runs root (default ./.fracture-tune/runs)")
    parser.add_argument("--out", type=Path, help="report folder (default <run dir>/retrain)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs (default 30, the seed's)")
    parser.add_argument("--train-on", choices=("train", "train+val"), default="train")
    parser.add_argument("--seeds", type=int, default=1, help="train this many seeds and report the spread")
    parser.add_argument(
        "--ensemble",
        type=int,
        default=1,
        metavar="K",
        help="with --search: register the K best distinct configurations as one model averaging their "
        "probabilities (after re-ranking, when it runs); the report adds the single best model beside it",
    )
    parser.add_argument(
        "--rerank",
        type=int,
        default=None,
        metavar="K",
        help="with --search: train the K best distinct configurations with fresh seeds and keep the best "
        "mean validation score (default: the search's evaluation.rerank_top_k; 0 = off)",
    )
    parser.add_argument(
        "--rerank-seeds",
        type=int,
        default=None,
        help="fresh seeds per finalist when re-ranking (default: the search's evaluation.rerank_seeds)",
    )
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: the search's)")
    parser.add_argument("--register-name", default="fracture-classifier", help="registered model name")
    parser.add_argument("--no-register", action="store_true", help="log the model but do not register it")
    parser.add_argument(
        "--promote",
        choices=("if-better", "always", "never"),
        default="if-better",
        help="move the 'champion' alias: only if test AUROC beats it on the same split (default)",
    )
    parser.add_argument(
        "--target-sensitivity",
        type=float,
        default=0.9,
        help="operating threshold chosen on validation for this sensitivity (default 0.9)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the seed base-CNN comparison row")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None)
    parser.set_defaults(handler=run_retrain_command)


def run_retrain_command(args: argparse.Namespace) -> int:
    from fracture_tune.search.classifier.evaluation import METRIC_NAMES, MetricInterval
    from fracture_tune.search.classifier.retrain import retrain

    result = retrain(
        args.search,
        run_id=args.run_id,
        config=args.config_json,
        dataset=args.dataset,
        storage=args.storage,
        out_dir=args.out,
        epochs=args.epochs,
        train_on=args.train_on,
        seeds=args.seeds,
        tracking_uri=args.tracking_uri,
        register_name=args.register_name,
        register=not args.no_register,
        promote=args.promote,
        target_sensitivity=args.target_sensitivity,
        baseline=not args.no_baseline,
        resamples=args.resamples,
        device=args.device,
        ensemble=args.ensemble,
        rerank_top_k=args.rerank,
        rerank_seeds=args.rerank_seeds,
    )
    report = result.report
    optimized, baseline = report.optimized, report.baseline
    print(f"\nretrained {report.source}: test split of {optimized.test_size} images, 95 % CIs")
    print(f"{'metric':<18} {'optimized':<24} {'seed base CNN' if baseline else ''}")
    for name in METRIC_NAMES:
        base = _interval_text(baseline.test[name]) if baseline else ""
        print(f"{name:<18} {_interval_text(optimized.test[name]):<24} {base}")
    threshold = optimized.threshold
    print(
        f"threshold {threshold.value:.4f} (validation sensitivity >= {threshold.target_sensitivity}): "
        f"test sensitivity {_interval_text(threshold.test['sensitivity'])}, "
        f"specificity {_interval_text(threshold.test['specificity'])}"
    )
    if report.rerank:
        entries = ", ".join(f"{entry['trial_id']} {entry['mean']:.4f}" for entry in report.rerank["entries"])
        print(f"re-ranked {len(report.rerank['entries'])} finalists by mean {report.rerank['metric']} over "
              f"fresh seeds: {entries}; winner {report.rerank['winner']}")
    if report.ensemble:
        single = report.ensemble["single_best"]["test"]["auroc"]
        difference = report.ensemble["auroc_minus_single_best"]
        print(f"ensemble of {len(report.ensemble['members'])}: single best model's test auroc "
              f"{_interval_text(MetricInterval(**single))}; ensemble - single best "
              f"{difference['value']:+.4f} [{difference['lower']:+.4f}, {difference['upper']:+.4f}] (paired)")
    if report.reproduction.get("warning"):
        print(f"warning: {report.reproduction['warning']}")
    if report.registry:
        registry = report.registry
        print(f"registered {registry.uri}; champion: {registry.champion} ({registry.decision})")
    print(f"report: {result.out_dir / 'report.md'}")
    return 0


def _interval_text(interval: MetricInterval) -> str:
    return f"{interval.value:.3f} [{interval.lower:.3f}, {interval.upper:.3f}]"


def _load_model(args: argparse.Namespace) -> Any:
    from fracture_tune.search.classifier.predict import load_classifier

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
    from fracture_tune.search.classifier.predict import (
        expand_inputs,
        format_table,
        predict_files,
        write_explanations,
        write_predictions,
    )

    classifier = _load_model(args)
    rows, images, good_rows = predict_files(classifier, expand_inputs(args.inputs), args.threshold)
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
        print("hint: pass PNG/JPEG/TIFF/BMP radiographs or folders of them; export PDF or DICOM pages "
              "to PNG first", file=sys.stderr)  # fmt: skip
        return 1
    return 0


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

    from fracture_tune.data.labels import build_label_map
    from fracture_tune.search.classifier.evaluation import format_intervals, intervals_as_dict
    from fracture_tune.search.classifier.predict import evaluate_folder

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
    from fracture_tune.search.classifier.export import export_classifier

    result = export_classifier(_load_model(args), args.format, args.out)
    print(
        f"wrote {result.path} ({result.format}; max abs difference to the eager model "
        f"{result.max_abs_diff:.2g}) and {result.sidecar} (preprocessing, classes, threshold)"
    )
    return 0
