"""Turn scanned files into the dataset's arrays: decode, drop rejects (reported), group duplicates,
exclude label conflicts, assign splits, and record everything in a report and a split record."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fracture_tune.data.decode import printable_path
from fracture_tune.data.decode_many import decode_files
from fracture_tune.data.dedupe import DuplicateAnalysis, find_duplicates
from fracture_tune.data.labels import CLASS_NAMES
from fracture_tune.data.report import PrepareReport
from fracture_tune.data.sources import ScanResult, SourceFile
from fracture_tune.data.split import SPLIT_NAMES_BY_CODE, assign_splits, split_hash


@dataclass(frozen=True)
class BuiltDataset:
    images: np.ndarray  # uint8 [N, S, S]
    columns: dict[str, Any]  # Parquet columns besides the pixels
    split_hash: str
    split_record: dict[str, Any]
    report: PrepareReport


def build_dataset(
    scan: ScanResult, sha256: Sequence[str | None], params: dict[str, Any], *, workers: int | None = None
) -> BuiltDataset:
    size = int(params["image_size"])
    outcomes = decode_files(
        [item.path for item in scan.files], size, workers=workers, max_pixels=int(params["max_pixels"])
    )
    report = PrepareReport(source=str(scan.source), kind=scan.kind, image_size=size, scanned=len(scan.files))
    report.ignored = [{"path": printable_path(path), "reason": reason} for path, reason in scan.ignored]
    report.notes = list(scan.notes)
    decoded = [row for row, outcome in enumerate(outcomes) if isinstance(outcome, np.ndarray)]
    for item, outcome in zip(scan.files, outcomes, strict=True):
        if isinstance(outcome, str):
            report.rejected.append({"path": printable_path(item.relative_path), "reason": outcome})
    files = [scan.files[row] for row in decoded]
    hashes = [sha256[row] or "" for row in decoded]
    images = np.stack([outcomes[row] for row in decoded]) if decoded else np.zeros((0, size, size), np.uint8)
    pixel_hashes = [hashlib.sha256(image.tobytes()).hexdigest() for image in images]
    duplicates = find_duplicates(pixel_hashes, [f.label for f in files], [f.group_hint for f in files])
    _report_duplicates(report, duplicates, files)
    keep = np.flatnonzero(duplicates.keep)
    files, hashes = [files[row] for row in keep], [hashes[row] for row in keep]
    images, groups = images[keep], duplicates.groups[keep]
    pixel_hashes = [pixel_hashes[row] for row in keep]
    labels = np.array([f.label for f in files], dtype=np.int64)
    split = assign_splits(
        labels,
        groups,
        val_fraction=params["val_fraction"],
        test_fraction=params["test_fraction"],
        seed=params["seed"],
        class_names=_class_names(files, scan.kind),
    )
    paths = [printable_path(f.relative_path) for f in files]
    row_keys = [
        f"{path}\t{digest}\t{label}"
        for path, digest, label in zip(paths, hashes, labels.tolist(), strict=True)
    ]
    hash_of_split = split_hash(row_keys, split)
    _report_counts(report, labels, split)
    columns = {
        "label": labels,
        "group": groups,
        "split": split,
        "source_path": paths,
        "sha256": hashes,
        "pixel_sha256": pixel_hashes,
    }
    record = _split_record(params, hash_of_split, paths, hashes, labels, groups, split, report)
    return BuiltDataset(images, columns, hash_of_split, record, report)


def _class_names(files: list[SourceFile], kind: str) -> dict[int, str]:
    """How errors name each label: with the class folders (or CSV labels) its files came from."""
    where = "folder" if kind == "folder" else "CSV label"
    found: dict[int, set[str]] = {}
    for item in files:
        found.setdefault(item.label, set()).add(item.label_name)
    return {
        label: f"class {CLASS_NAMES[label]!r} ({where}{'s' if len(names) > 1 else ''} "
        + ", ".join(repr(name) for name in sorted(names))
        + ")"
        for label, names in found.items()
    }


def _report_duplicates(report: PrepareReport, duplicates: DuplicateAnalysis, files: list[SourceFile]) -> None:
    for rows in duplicates.duplicate_sets:
        report.duplicate_groups.append([printable_path(files[row].relative_path) for row in rows])
    for rows in duplicates.conflict_sets:
        report.conflicts.append(
            {
                "paths": [printable_path(files[row].relative_path) for row in rows],
                "labels": [files[row].label_name for row in rows],
                "reason": "identical pixels filed under different labels ("
                + " vs ".join(sorted({files[row].label_name for row in rows}))
                + "); excluded",
            }
        )


def _report_counts(report: PrepareReport, labels: np.ndarray, split: np.ndarray) -> None:
    report.prepared = int(labels.size)
    report.class_counts = {name: int(np.sum(labels == code)) for code, name in enumerate(CLASS_NAMES)}
    report.split_counts = {
        split_name: {
            name: int(np.sum((split == split_code) & (labels == code)))
            for code, name in enumerate(CLASS_NAMES)
        }
        for split_code, split_name in SPLIT_NAMES_BY_CODE.items()
    }


def _split_record(
    params: dict[str, Any],
    hash_of_split: str,
    paths: list[str],
    hashes: list[str],
    labels: np.ndarray,
    groups: np.ndarray,
    split: np.ndarray,
    report: PrepareReport,
) -> dict[str, Any]:
    rows = [
        {
            "path": path,
            "sha256": digest,
            "label": int(label),
            "group": int(group),
            "split": SPLIT_NAMES_BY_CODE[int(code)],
        }
        for path, digest, label, group, code in zip(paths, hashes, labels, groups, split, strict=True)
    ]
    return {
        "split_hash": hash_of_split,
        "split_hash_rows": "sha256 over 'source_path<TAB>sha256<TAB>label<TAB>split code' lines, "
        "in row order",
        "seed": params["seed"],
        "fractions": {
            "train": round(1.0 - params["val_fraction"] - params["test_fraction"], 10),
            "val": params["val_fraction"],
            "test": params["test_fraction"],
        },
        "counts": report.split_counts,
        "rows": rows,
    }
