"""``prepare_dataset``: scan → hash → (cache hit, or decode → dedupe → split → write atomically) → load.

Same inputs and parameters give the same key, so the second run loads the cache instead of decoding.
Concurrent prepares of one key serialise on ``<cache_root>/<key>.lock``: the second waits, then finds the
first one's cache.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from fracture_tune.data import cache
from fracture_tune.data.cache import load_prepared
from fracture_tune.data.dataset import PreparedDataset
from fracture_tune.data.decode import DEFAULT_MAX_PIXELS
from fracture_tune.data.ingest import BuiltDataset, build_dataset
from fracture_tune.data.labels import CLASS_NAMES
from fracture_tune.data.prepare_settings import DEFAULT_CACHE_ROOT, PrepareSettings
from fracture_tune.data.report import PrepareReport
from fracture_tune.data.sources import ScanResult, scan_source
from fracture_tune.errors import FractureTuneError

__all__ = ["PrepareResult", "load_prepared", "prepare_dataset"]

log = logging.getLogger(__name__)

DEFAULTS = PrepareSettings()
# The parameters a search's dataset section sets (image_size, val_fraction, test_fraction, split_seed).
_COMPARED = ("image_size", "val_fraction", "test_fraction", "seed")


@dataclass(frozen=True)
class PrepareResult:
    dataset: PreparedDataset
    cache_hit: bool
    report: PrepareReport

    @property
    def cache_dir(self) -> Path:
        return Path(self.dataset.root)


def prepare_dataset(
    source: str | os.PathLike[str],
    *,
    cache_root: str | os.PathLike[str] = DEFAULT_CACHE_ROOT,
    image_size: int = DEFAULTS.image_size,
    val_fraction: float = DEFAULTS.val_fraction,
    test_fraction: float = DEFAULTS.test_fraction,
    seed: int = DEFAULTS.seed,
    strict: bool = False,
    label_map: Mapping[str, int] | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> PrepareResult:
    """Prepare (or reuse) the cache of ``source``; see docs/contracts.md.

    ``strict``: any rejected file or label conflict is an error (also when the cache already exists).
    ``label_map``: class/label name → 0/1, overriding the built-in names. ``workers``: decoding processes
    (default: all available cores).
    """
    if image_size < 8:
        raise FractureTuneError(f"--size must be at least 8 pixels, got {image_size}")
    scan = scan_source(source, label_map)
    sha256 = [cache.file_sha256(item.path) for item in scan.files]
    params: dict[str, Any] = {
        "image_size": int(image_size),
        "val_fraction": float(val_fraction),
        "test_fraction": float(test_fraction),
        "seed": int(seed),
        "max_pixels": int(max_pixels),
        "class_names": list(CLASS_NAMES),
    }
    entries = [
        (f.relative_path, digest, f.label, f.group_hint) for f, digest in zip(scan.files, sha256, strict=True)
    ]
    key = cache.dataset_key(entries, params)
    root = Path(cache_root).expanduser()
    cache_dir = root / key
    if not cache.is_complete(cache_dir):
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / f"{key}.lock")):
            if not cache.is_complete(cache_dir):  # another process may have built it while we waited
                _note_other_settings(root, scan.source, params)
                built = build_dataset(scan, sha256, params, workers=workers)
                _raise_if_strict(built.report, strict)
                meta = _meta(key, scan, params, built, root, label_map)
                cache.publish_atomically(root, key, lambda folder: _write_cache(folder, built, meta))
                log.info("prepared %d images into %s", len(built.images), cache_dir)
                return PrepareResult(load_prepared(cache_dir), cache_hit=False, report=built.report)
    log.info("cache hit: %s (same files and parameters), nothing decoded", cache_dir)
    report = load_report(cache_dir)
    _raise_if_strict(report, strict)
    return PrepareResult(load_prepared(cache_dir), cache_hit=True, report=report)


def load_report(cache_dir: str | os.PathLike[str]) -> PrepareReport:
    payload = json.loads((Path(cache_dir) / cache.REPORT_JSON).read_text(encoding="utf-8"))
    return PrepareReport.from_dict(payload)


def _note_other_settings(root: Path, source: Path, params: dict[str, Any]) -> None:
    """Say so when the cache root holds this source prepared with other settings: a search whose dataset
    settings differ from the ones given to ``data prepare`` prepares afresh instead of reusing that cache."""
    differences = []
    for folder in cache.prepared_datasets(root):
        meta = json.loads((folder / cache.META_FILE).read_text(encoding="utf-8"))
        if meta.get("source") != str(source):
            continue
        theirs = meta.get("params", {})
        changed = [f"{name} {theirs.get(name)}" for name in _COMPARED if theirs.get(name) != params[name]]
        if changed:
            differences.append(f"{folder} ({', '.join(changed)})")
    if differences:
        wanted = ", ".join(f"{name} {params[name]}" for name in _COMPARED)
        log.warning(
            "preparing %s afresh at %s: %s holds it prepared with other settings: %s. A prepared cache is "
            "reused only when image size, fractions and seed all match (`fracture-tune data prepare SRC "
            "--config NAME` prepares with a search config's dataset settings)",
            source,
            wanted,
            root,
            "; ".join(differences),
        )


def _raise_if_strict(report: PrepareReport, strict: bool) -> None:
    if strict and report.excluded_count:
        raise FractureTuneError(
            f"--strict: {report.excluded_count} file(s) of {report.source} cannot be used:\n  "
            + "\n  ".join(report.problems()),
            hint="fix or remove those files, or run without --strict to prepare the rest (they are listed "
            "in report.txt)",
        )


def _meta(
    key: str,
    scan: ScanResult,
    params: dict[str, Any],
    built: BuiltDataset,
    root: Path,
    label_map: Mapping[str, int] | None,
) -> dict[str, Any]:
    return {
        "format_version": cache.FORMAT_VERSION,
        "key": key,
        "image_size": params["image_size"],
        "n_images": len(built.images),
        "class_names": list(CLASS_NAMES),
        "split_hash": built.split_hash,
        "source": str(scan.source),
        "source_kind": scan.kind,
        "params": params,
        "command": _command(scan.source, root, params, label_map),
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": [cache.DATA_FILE, cache.SPLIT_FILE, cache.REPORT_JSON, cache.REPORT_TEXT],
    }


def _command(source: Path, root: Path, params: dict[str, Any], label_map: Mapping[str, int] | None) -> str:
    words = ["fracture-tune", "data", "prepare", str(source), "--out", str(root)]
    words += ["--size", str(params["image_size"]), "--val", str(params["val_fraction"])]
    words += ["--test", str(params["test_fraction"]), "--seed", str(params["seed"])]
    for name, label in sorted((label_map or {}).items()):
        words += ["--positive" if label == 1 else "--negative", name]
    return shlex.join(words)


def _write_cache(folder: Path, built: BuiltDataset, meta: dict[str, Any]) -> None:
    cache.write_table(folder / cache.DATA_FILE, built.images, built.columns)
    cache.write_json(folder / cache.SPLIT_FILE, {"dataset_key": meta["key"], **built.split_record})
    cache.write_json(folder / cache.REPORT_JSON, built.report.to_dict())
    (folder / cache.REPORT_TEXT).write_text(built.report.render_text(), encoding="utf-8")
    cache.write_json(folder / cache.META_FILE, meta)  # last: its presence marks the cache complete
