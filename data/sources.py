"""Find the files to prepare: a folder of class sub-folders, or a CSV manifest ``path,label[,group]``.

Scanning only lists files and labels; it decodes nothing. Files it will not use are listed with a reason
(``ignored``), never dropped silently.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fracture_tune.data.labels import CLASS_NAMES, resolve_labels
from fracture_tune.errors import FractureTuneError


@dataclass(frozen=True)
class SourceFile:
    """One file to decode. ``relative_path`` is relative to the source folder (or the CSV's folder)."""

    relative_path: str
    path: Path
    label: int
    label_name: str
    group_hint: str | None = None


@dataclass
class ScanResult:
    source: Path
    kind: str  # "folder" or "csv"
    files: list[SourceFile]
    ignored: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def expand_source_path(text: str) -> Path:
    """A configured image source as a path: ``~`` and ``$VARIABLE``s expanded (``$FRACATLAS_DIR``).

    Raises ``FractureTuneError`` naming a variable that is not set, instead of a path with a ``$`` in it.
    """
    expanded = os.path.expandvars(os.path.expanduser(text))
    if "$" in expanded:
        missing = expanded[expanded.index("$") :].split("/", 1)[0]
        raise FractureTuneError(
            f"dataset path {text!r}: the environment variable {missing} is not set",
            hint=f"export {missing.strip('${}')}=/path/to/images, or pass --set dataset.path=/path/to/images",
        )
    return Path(expanded)


def missing_source_hint(path: Path) -> str:
    """What to check when an image source does not exist: where it was looked for, what it must be, and
    how to get images to try things on."""
    resolved = Path(os.path.abspath(path))
    nearest = next(parent for parent in resolved.parents if parent.exists())
    missing = resolved.relative_to(nearest).parts[0]
    where = (
        "" if path.is_absolute() else f"relative paths resolve from the current folder ({Path.cwd()}), and "
    )
    return (
        f"check the path: {where}{nearest} has no {missing!r}. It must be a folder with one sub-folder per "
        "class (Fractured/, Non_fractured/) or a CSV manifest path,label[,group]; no images yet? "
        "`fracture-tune data synth DIR` writes synthetic ones"
    )


def scan_source(source: str | os.PathLike[str], label_map: Mapping[str, int] | None = None) -> ScanResult:
    """List the files of a class-folder tree or a CSV manifest, with resolved 0/1 labels."""
    root = Path(source).expanduser()
    if not root.exists():
        raise FractureTuneError(
            f"dataset source {str(root)!r} does not exist", hint=missing_source_hint(root)
        )
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise FractureTuneError(
                f"dataset source {str(root)!r} is a file but not a .csv manifest",
                hint="pass a folder of class sub-folders or a CSV with columns path,label[,group]",
            )
        result = _scan_manifest(root.resolve(), label_map)
    else:
        result = _scan_folder(root.resolve(), label_map)
    _require_both_classes(result)
    result.files.sort(key=lambda item: item.relative_path)
    return result


def _scan_folder(root: Path, label_map: Mapping[str, int] | None) -> ScanResult:
    class_dirs: list[Path] = []
    ignored: list[tuple[str, str]] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            ignored.append((entry.name, "hidden entry"))
        elif entry.is_dir():
            class_dirs.append(entry)
        else:
            ignored.append((entry.name, "not inside a class folder"))
    if not class_dirs:
        raise FractureTuneError(
            f"no class folders in {str(root)!r}",
            hint="put each class in its own sub-folder, e.g. Fractured/ and Non_fractured/",
        )
    labels = resolve_labels([directory.name for directory in class_dirs], label_map)
    result = ScanResult(source=root, kind="folder", files=[], ignored=ignored)
    for class_dir in class_dirs:
        count_before = len(result.files)
        for relative, file_path in _walk_files(root, class_dir):
            if any(part.startswith(".") for part in relative.split("/")):
                result.ignored.append((relative, "hidden file"))
            else:
                result.files.append(SourceFile(relative, file_path, labels[class_dir.name], class_dir.name))
        if len(result.files) == count_before:
            result.notes.append(f"class folder {class_dir.name!r} is empty")
    return result


def _walk_files(root: Path, class_dir: Path) -> list[tuple[str, Path]]:
    """(relative posix path, absolute path) of every file under class_dir, sorted; os.walk for speed."""
    found = []
    for directory, _subdirs, names in os.walk(class_dir):
        prefix = os.path.relpath(directory, root).replace(os.sep, "/")
        found += [(f"{prefix}/{name}", Path(directory, name)) for name in names]
    return sorted(found)


def _scan_manifest(manifest: Path, label_map: Mapping[str, int] | None) -> ScanResult:
    rows = _read_manifest_rows(manifest)
    labels = resolve_labels({label for _, _, label, _ in rows}, label_map)
    result = ScanResult(source=manifest, kind="csv", files=[])
    for _line, path_text, label_name, group in rows:
        file_path = Path(path_text)
        if not file_path.is_absolute():
            file_path = manifest.parent / file_path
        relative = Path(os.path.normpath(path_text)).as_posix()
        result.files.append(SourceFile(relative, file_path, labels[label_name], label_name, group))
    return result


def _read_manifest_rows(manifest: Path) -> list[tuple[int, str, str, str | None]]:
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in (reader.fieldnames or [])]
        if "path" not in columns or "label" not in columns:
            raise FractureTuneError(
                f"CSV manifest {str(manifest)!r} has columns {columns}; expected path,label[,group]",
                hint="add a header line: path,label,group (group is optional; paths are relative to the CSV)",
            )
        reader.fieldnames = columns
        rows = []
        for line, row in enumerate(reader, start=2):
            path_text, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
            if not path_text and not label:
                continue
            if not path_text or not label:
                raise FractureTuneError(f"{manifest}:{line}: empty path or label in {row}")
            group = (row.get("group") or "").strip() or None
            rows.append((line, path_text, label, group))
    if not rows:
        raise FractureTuneError(f"CSV manifest {str(manifest)!r} lists no files")
    return rows


def _require_both_classes(result: ScanResult) -> None:
    counts = {label: 0 for label in (0, 1)}
    names: dict[int, set[str]] = {0: set(), 1: set()}
    for item in result.files:
        counts[item.label] += 1
        names[item.label].add(item.label_name)
    missing = [label for label, count in counts.items() if count == 0]
    if missing:
        found = ", ".join(f"{CLASS_NAMES[label]}: {counts[label]} files" for label in (0, 1))
        empty = "; ".join(result.notes)
        raise FractureTuneError(
            f"{str(result.source)!r} has no files for class {CLASS_NAMES[missing[0]]!r} ({found})"
            + (f"; {empty}" if empty else ""),
            hint="a binary classifier needs images of both classes: add a folder for the missing class, "
            "or map an existing name with --positive NAME / --negative NAME",
        )
