"""Pack what a GPU machine without network access needs to run a search: the wheels it lacks (pruned) and
the images, under .gpu/.

    python tools/gpu_bundle.py --wheels /tmp/wheels312 --data $FRACATLAS_DIR --present present.txt

The bundle is split in two folders of under 64 MiB each, for machines that take files in pieces that size:
  .gpu/part1/  the images (data/<class>/...) and every wheel but Ray's (wheels/)
  .gpu/part2/  Ray's wheel
Pruned, with their RECORD entries: Ray's Java jars (31 MiB; Python never loads them) and its dashboard's
source map, MLflow's web UI bundle (7 MiB; the search logs to MLflow, nobody browses it there).
``--present`` lists packages the GPU machine already has (names as pip normalises them); their wheels are
left out. Get the wheels of the dependencies in pyproject.toml with ``pip download --only-binary=:all:
--python-version 3.12 --platform manylinux... -d /tmp/wheels312 <requirements>`` (their dependencies
included: this script drops what is present).
BENCHMARKS.md, "Running the GPU checks", says how to install them there.
"""

from __future__ import annotations

import argparse
import re
import shutil
import zipfile
from pathlib import Path

PRUNE = {
    "ray": ("ray/jars/", "ray/dashboard/client/build/static/js/main."),
    "mlflow": ("mlflow/server/js/",),
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution(wheel: Path) -> str:
    return normalise(wheel.name.split("-")[0])


def prune_wheel(source: Path, target: Path, prefixes: tuple[str, ...]) -> int:
    """Copy ``source`` without entries under ``prefixes`` (RECORD rewritten to match); bytes removed."""
    removed = 0
    with zipfile.ZipFile(source) as inp, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for info in inp.infolist():
            if info.filename.startswith(prefixes):
                removed += info.compress_size
                continue
            data = inp.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not line.startswith(prefixes)).encode()
            out.writestr(info, data)
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wheels", type=Path, required=True, help="folder of downloaded cp312 wheels")
    parser.add_argument("--data", type=Path, required=True, help="image folder with class sub-folders")
    parser.add_argument("--present", type=Path, help="file: packages the GPU machine has, one per line")
    parser.add_argument("--out", type=Path, default=Path(".gpu"))
    args = parser.parse_args()
    present = set()
    if args.present:
        present = {normalise(line.strip()) for line in args.present.read_text().split() if line.strip()}
    part1, part2 = args.out / "part1", args.out / "part2"
    shutil.rmtree(args.out, ignore_errors=True)
    (part1 / "wheels").mkdir(parents=True)
    part2.mkdir(parents=True)
    for wheel in sorted(args.wheels.glob("*.whl")):
        name = distribution(wheel)
        if name in present:
            continue
        target = (part2 if name == "ray" else part1 / "wheels") / wheel.name
        if name in PRUNE:
            removed = prune_wheel(wheel, target, PRUNE[name])
            print(f"{wheel.name}: pruned {removed / 2**20:.1f} MiB")
        else:
            shutil.copy2(wheel, target)
    for class_dir in sorted(path for path in args.data.iterdir() if path.is_dir()):
        shutil.copytree(class_dir, part1 / "data" / class_dir.name)
    for part in (part1, part2):
        size = sum(path.stat().st_size for path in part.rglob("*") if path.is_file())
        print(f"{part}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
