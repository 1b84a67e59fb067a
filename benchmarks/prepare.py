"""Data preparation: cold prepare (decode everything) vs warm prepare (cache hit), same inputs.

    python benchmarks/prepare.py --data $FRACATLAS_DIR --runs 3 --out prepare_fracatlas_<machine>_<date>.json

Cold runs each write into a fresh temporary cache root (one with 1 decoding process, one with all
cores); warm runs call prepare again on a finished cache (hash the source files, load the Parquet file).
Each figure is the median of ``--runs`` runs. Prints a table with the ratio to the cold all-cores case;
``--out`` also writes it as JSON (with the command, date and machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench_report import fracatlas_dir, write_report

from fracture_tune.data.decode_many import available_cores
from fracture_tune.data.prepare import prepare_dataset


def median_seconds(run: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def cold(source: Path, size: int, workers: int) -> Callable[[], object]:
    def run() -> object:
        with tempfile.TemporaryDirectory(prefix="prepare-bench-") as root:
            result = prepare_dataset(source, cache_root=root, image_size=size, workers=workers)
            assert not result.cache_hit
            return result

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=fracatlas_dir(),
        help="image folder with class sub-folders (default: $FRACATLAS_DIR)",
    )
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    cores = available_cores()
    cases: list[tuple[str, float]] = []
    cases.append(("cold, 1 process", median_seconds(cold(args.data, args.size, 1), args.runs)))
    cases.append((f"cold, {cores} processes", median_seconds(cold(args.data, args.size, cores), args.runs)))
    with tempfile.TemporaryDirectory(prefix="prepare-bench-") as root:
        first = prepare_dataset(args.data, cache_root=root, image_size=args.size)
        images = len(first.dataset.arrays.labels)
        warm = median_seconds(
            lambda: prepare_dataset(args.data, cache_root=root, image_size=args.size), args.runs
        )
        cases.append(("warm (cache hit)", warm))
    reference = cases[1][1]
    print(f"prepare {args.data} ({images} images, {args.size}x{args.size}), median of {args.runs} runs")
    print(
        f"machine: {platform.processor() or platform.machine()}, {cores} cores available, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{'case':<24}{'seconds':>10}{'images/s':>12}{'vs cold (all cores)':>22}")
    for name, seconds in cases:
        print(f"{name:<24}{seconds:>10.3f}{images / seconds:>12.0f}{reference / seconds:>21.1f}x")
    write_report(
        args.out,
        data=str(args.data),
        images=images,
        image_size=args.size,
        runs=args.runs,
        cores_available=cores,
        python=platform.python_version(),
        cases=[
            {
                "case": name,
                "seconds": seconds,
                "images_per_second": images / seconds,
                "vs_cold_all_cores": reference / seconds,
            }
            for name, seconds in cases
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
