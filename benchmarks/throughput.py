"""Training throughput: the seed's input pipeline vs the engine, same images, same model, one run.

    python benchmarks/throughput.py --data $FRACATLAS_DIR --device cpu --seconds 10 \
        --out throughput_<machine>_<date>.json

(a) the seed: ImageFolder + PIL decode/resize/normalise per sample every epoch, DataLoader num_workers=0,
    ``loss.item()`` every step, NCHW (benchmarks/seed_pipeline.py);
(b) the engine (trainables.engine.fit): the images decoded once into uint8 arrays, batched augmentation on
    the device, no per-step host sync; on CPU with and without channels_last, on CUDA fp32 at batch 32,
    then bf16 + channels_last at batch 32 and 256, the last also with torch.compile, plus 1/2/4 processes
    sharing the GPU (summed throughput).
Each figure is the median images/s of ``--windows`` timed windows after a warm-up window.
On CPU the windows are interleaved (seed, engine, engine, seed, ...) and each trains on the images the seed
did in its warm-up, so all see the same machine load. On CUDA (``--schedule sequential``) each engine
variant is one uninterrupted run whose epochs (= windows) hold ``--epoch-images`` images, long enough to
time a GPU, and torch.compile compiles once in the warm-up epoch. Needs only torch, torchvision, numpy and
pillow.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_report import fracatlas_dir, write_report
from seed_pipeline import SeedTrainer, seed_loader

from fracture_tune.data.dataset import DatasetArrays
from fracture_tune.trainables.engine import fit
from fracture_tune.trainables.models import build_model

CASES: dict[str, dict[str, Any]] = {
    # The seed's base CNN recipe: batch 16, no augmentation.
    "base_cnn": {"model": "base_cnn", "batch_size": 16, "lr": 1e-3, "aug_strength": 0.0},
    # The seed's tuned CNN (Optuna winner): 32/128/256, dropout 0.7, batch 32, with augmentation.
    "tuned_cnn": {
        "model": "tunable_cnn",
        "c1": 32,
        "c2": 128,
        "c3": 256,
        "dropout": 0.7,
        "batch_size": 32,
        "lr": 0.0058,
        "aug_strength": 1.0,
    },
}


def decode_dataset(root: Path, image_size: int = 128) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """The ImageFolder's files, decoded once to uint8 [N, S, S] (data.decode when present, else PIL)."""
    from torchvision import datasets

    folder = datasets.ImageFolder(str(root))
    try:
        from fracture_tune.data.decode import decode_image
    except ImportError:  # the data layer is optional here: fall back to the seed's PIL resize
        from PIL import Image

        def decode_image(path: str, size: int) -> np.ndarray:  # type: ignore[misc]
            with Image.open(path) as image:
                return np.asarray(image.convert("L").resize((size, size), Image.BILINEAR), dtype=np.uint8)

    started = time.perf_counter()
    images = np.stack([decode_image(path, image_size) for path, _ in folder.samples])
    positive = [name.lower().startswith("fractured") for name in folder.classes]
    labels = np.array([int(positive[label]) for _, label in folder.samples], dtype=np.int64)
    return [path for path, _ in folder.samples], images, labels, time.perf_counter() - started


class EngineWindows:
    """The engine trained one epoch (= one window) per call, resuming from its own snapshot in between."""

    def __init__(
        self,
        case: dict[str, Any],
        arrays: DatasetArrays,
        window_images: int,
        device: str,
        threads: int,
        **overrides: Any,
    ) -> None:
        self.config = {
            **case,
            "train_limit": min(window_images, len(arrays.labels)),
            "device": device,
            "num_threads": threads,
            **overrides,
        }
        self.arrays = arrays
        self.state: dict[str, Any] | None = None

    def window(self) -> float:
        epochs = (self.state["epoch"] if self.state else 0) + 1
        result = fit({**self.config, "epochs": epochs}, self.arrays, eval_split=None, resume_state=self.state)
        self.state = result.snapshot()
        return result.history[-1]["images_per_second"]


def engine_rates(
    case: dict[str, Any],
    arrays: DatasetArrays,
    window_images: int,
    windows: int,
    device: str,
    threads: int,
    **overrides: Any,
) -> list[float]:
    """One uninterrupted run: epoch 1 is the warm-up, the next ``windows`` epochs are timed."""
    config = {
        **case,
        "epochs": windows + 1,
        "train_limit": min(window_images, len(arrays.labels)),
        "device": device,
        "num_threads": threads,
        **overrides,
    }
    history = fit(config, arrays, eval_split=None).history
    return [row["images_per_second"] for row in history[1:]]


def seed_trainer(case: dict[str, Any], root: Path, device: str) -> SeedTrainer:
    torch.manual_seed(0)
    kwargs = {k: v for k, v in case.items() if k in ("c1", "c2", "c3", "dropout")}
    model = build_model(case["model"], input_size=128, **kwargs)
    loader = seed_loader(root, case["batch_size"], augment=case["aug_strength"] > 0)
    return SeedTrainer(model, loader, torch.device(device), lr=case["lr"])


def packed_rates(
    case_name: str,
    arrays_file: Path,
    window_images: int,
    windows: int,
    device: str,
    processes: int,
    overrides: dict[str, Any],
) -> list[float]:
    """Run ``processes`` engine workers at once on the device; each returns its median images/s."""
    job = json.dumps(
        {
            "case": case_name,
            "arrays": str(arrays_file),
            "window_images": window_images,
            "windows": windows,
            "device": device,
            "overrides": overrides,
            "threads": max(1, (os.cpu_count() or 1) // processes),
        }
    )
    command = [sys.executable, __file__, "--worker", job]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    results = []
    for worker in workers:
        out, _ = worker.communicate()
        if worker.returncode:
            raise RuntimeError(f"packed worker failed with status {worker.returncode}")
        results.append(json.loads(out.strip().splitlines()[-1])["median"])
    return results


def worker_main(job_text: str) -> None:
    job = json.loads(job_text)
    saved = np.load(job["arrays"])
    arrays = DatasetArrays(
        images=saved["images"], labels=saved["labels"], split=np.zeros(len(saved["labels"]), dtype=np.int8)
    )
    rates = engine_rates(
        CASES[job["case"]],
        arrays,
        job["window_images"],
        job["windows"],
        job["device"],
        job["threads"],
        **job["overrides"],
    )
    print(json.dumps({"median": statistics.median(rates), "rates": rates}))


def engine_variants(
    kind: str, compile_variant: bool = True, tuning: bool = False
) -> list[tuple[str, dict[str, Any]]]:
    """``cpu``: NCHW vs channels_last. ``gpu``: fp32 b32, bf16 + channels_last (CL) b32/b256, + compile.

    ``tuning`` (with compile) adds what each engine setting is worth on the GPU: b256 compile without
    cuDNN autotuning (the engine's default turns it on), CUDA graphs (compile mode reduce-overhead) at
    batch 256 and 32, and batch 512.
    """
    if kind == "cpu":
        return [("engine NCHW", {"channels_last": False}), ("engine channels_last", {"channels_last": True})]
    bf16_cl = {"amp": True, "channels_last": True}
    variants = [
        ("engine fp32 b32", {"batch_size": 32, "amp": False, "channels_last": False}),
        ("engine bf16 CL b32", {"batch_size": 32, **bf16_cl}),
        ("engine bf16 CL b256", {"batch_size": 256, **bf16_cl}),
    ]
    if compile_variant:
        variants.append(("engine bf16 CL b256 compile", {"batch_size": 256, **bf16_cl, "compile": True}))
    if compile_variant and tuning:
        graphs = {"compile": True, "compile_mode": "reduce-overhead"}
        variants += [
            (
                "engine bf16 CL b256 compile, no cudnn.benchmark",
                {"batch_size": 256, **bf16_cl, "compile": True, "cudnn_benchmark": False},
            ),
            ("engine bf16 CL b256 compile + CUDA graphs", {"batch_size": 256, **bf16_cl, **graphs}),
            ("engine bf16 CL b32 compile + CUDA graphs", {"batch_size": 32, **bf16_cl, **graphs}),
            ("engine bf16 CL b512 compile", {"batch_size": 512, **bf16_cl, "compile": True}),
        ]
    return variants


def epoch_shape(total_images: int, epoch_images: int, multiple: int = 512) -> tuple[int, int]:
    """(train_limit, aug_factor): an epoch of >= ``epoch_images`` from a slice whose size is a multiple of
    the largest batch, so no epoch ends in a short batch (a new shape would make torch.compile recompile)."""
    limit = total_images // multiple * multiple if total_images >= multiple else total_images
    return limit, max(1, -(-epoch_images // limit))


def row(
    case: str, pipeline: str, batch: int, rates: list[float], seed_median: float | None
) -> dict[str, Any]:
    median = statistics.median(rates)
    return {
        "case": case,
        "pipeline": pipeline,
        "batch_size": batch,
        "images_per_second": median,
        "windows": rates,
        "ratio_to_seed": median / seed_median if seed_median else None,
    }


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    files, images, labels, decode_seconds = decode_dataset(args.data)
    arrays = DatasetArrays(images=images, labels=labels, split=np.zeros(len(labels), dtype=np.int8))
    print(
        f"{len(files)} images decoded once in {decode_seconds:.1f} s; device {device}, {threads} threads",
        flush=True,
    )
    schedule = args.schedule
    if schedule == "auto":
        schedule = "sequential" if device == "cuda" else "interleaved"
    kind = args.variants if args.variants != "auto" else ("gpu" if device == "cuda" else "cpu")
    rows: list[dict[str, Any]] = []
    if args.packed_only:  # e.g. again under CUDA MPS: the packed rows alone, no seed ratio
        for name in args.pack_cases or args.cases:
            rows += _packed_rows(name, arrays, args, device, None)
    for name in [] if args.packed_only else args.cases:
        compiled = not args.no_compile and name in (args.compile_cases or args.cases)
        variants = engine_variants(kind, compile_variant=compiled, tuning=args.tuning)
        if schedule == "interleaved":
            rows += _interleaved_rows(name, CASES[name], arrays, args, device, threads, variants)
        else:
            rows += _sequential_rows(name, CASES[name], arrays, args, device, threads, variants)
        if (device == "cuda" or args.pack_on_cpu) and args.pack and name in (args.pack_cases or args.cases):
            rows += _packed_rows(name, arrays, args, device, rows[-1]["seed_median"])
    return {
        "machine": _machine(device, threads),
        "schedule": schedule,
        "epoch_images": args.epoch_images,
        "decode_seconds": decode_seconds,
        "images": len(files),
        "seconds": args.seconds,
        "windows": args.windows,
        "results": rows,
    }


def _interleaved_rows(
    name: str,
    case: dict[str, Any],
    arrays: DatasetArrays,
    args: argparse.Namespace,
    device: str,
    threads: int,
    variants: list[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Round-robin windows (seed, engine variants, seed, ...) so each pipeline sees the same machine load."""
    seed = seed_trainer(case, args.data, device)
    window_images = seed.warmup(args.seconds)
    engines = [EngineWindows(case, arrays, window_images, device, threads, **o) for _, o in variants]
    for engine in engines:
        engine.window()  # warm-up epoch
    rates: list[list[float]] = [[] for _ in range(len(engines) + 1)]
    for _ in range(args.windows):
        rates[0].append(seed.window(window_images))
        for index, engine in enumerate(engines, start=1):
            rates[index].append(engine.window())
    labels = ["seed (ImageFolder + PIL, item() per step)"] + [label for label, _ in variants]
    batches = [case["batch_size"]] + [o.get("batch_size", case["batch_size"]) for _, o in variants]
    return _rows(name, labels, batches, rates, window_images)


def _rows(
    name: str, labels: list[str], batches: list[int], rates: list[list[float]], window_images: int
) -> list[dict[str, Any]]:
    """One row per pipeline; ``rates[0]`` is the seed's. Ratios are to the seed's median."""
    seed_median = statistics.median(rates[0])
    rows: list[dict[str, Any]] = []
    for label, batch, window_rates in zip(labels, batches, rates, strict=True):
        result = row(name, label, batch, window_rates, seed_median)
        # Paired ratios (same round, same load) are steadier than a ratio of medians on a busy machine.
        paired = [rate / seed_rate for rate, seed_rate in zip(window_rates, rates[0], strict=True)]
        result["paired_ratio_median"] = statistics.median(paired)
        result.update(window_images=window_images, seed_median=seed_median)
        rows.append(result)
        print(_format(result), flush=True)
    return rows


def _sequential_rows(
    name: str,
    case: dict[str, Any],
    arrays: DatasetArrays,
    args: argparse.Namespace,
    device: str,
    threads: int,
    variants: list[tuple[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The seed's windows, then each engine variant as one uninterrupted run (a dedicated GPU)."""
    seed = seed_trainer(case, args.data, device)
    window_images = seed.warmup(args.seconds)
    rates = [[seed.window(window_images) for _ in range(args.windows)]]
    print(f"{name}: seed {statistics.median(rates[0]):.0f} img/s", flush=True)
    limit, aug_factor = epoch_shape(len(arrays.labels), args.epoch_images)
    ran = []
    for label, overrides in variants:
        try:
            rates.append(
                engine_rates(
                    case, arrays, limit, args.windows, device, threads, aug_factor=aug_factor, **overrides
                )
            )
        except Exception as error:  # one failing variant (e.g. compile) must not lose the others' figures
            print(f"{name}: {label} FAILED: {type(error).__name__}: {error}", flush=True)
            continue
        ran.append((label, overrides))
        print(f"{name}: {label} {statistics.median(rates[-1]):.0f} img/s", flush=True)
    labels = ["seed (ImageFolder + PIL, item() per step)"] + [label for label, _ in ran]
    batches = [case["batch_size"]] + [o.get("batch_size", case["batch_size"]) for _, o in ran]
    rows = _rows(name, labels, batches, rates, window_images)
    for result in rows[1:]:
        result.update(engine_epoch_images=limit * aug_factor, train_limit=limit, aug_factor=aug_factor)
    return rows


def _packed_rows(
    name: str, arrays: DatasetArrays, args: argparse.Namespace, device: str, seed_median: float | None
) -> list[dict[str, Any]]:
    """1, 2, 4 … engine processes training at once on the device (bf16 + CL, batch 32), summed images/s."""
    rows = []
    limit, aug_factor = epoch_shape(len(arrays.labels), args.epoch_images)
    overrides = {
        "batch_size": 32,
        "amp": True,
        "channels_last": True,
        "aug_factor": aug_factor,
        **args.pack_overrides,
    }
    with tempfile.TemporaryDirectory() as scratch:
        arrays_file = Path(scratch) / "arrays.npz"
        np.savez(arrays_file, images=arrays.images, labels=arrays.labels)
        for processes in args.pack:
            per_process = packed_rates(name, arrays_file, limit, args.windows, device, processes, overrides)
            label = f"engine packed x{processes} (sum)"
            result = row(name, label, overrides["batch_size"], [sum(per_process)], seed_median)
            result.update(
                per_process=per_process,
                engine_epoch_images=limit * aug_factor,
                pack_overrides=args.pack_overrides,
            )
            rows.append(result)
            print(_format(rows[-1]), flush=True)
    return rows


def _machine(device: str, threads: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "threads": threads,
        "torch": torch.__version__,
        # Other work on the machine skews CPU figures: the load average is recorded with them.
        "load_average_at_end": os.getloadavg(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _format(result: dict[str, Any]) -> str:
    windows = ", ".join(f"{rate:.0f}" for rate in result["windows"])
    text = (
        f"{result['case']:<10} {result['pipeline']:<50} b{result['batch_size']:<4} "
        f"{result['images_per_second']:8.1f} img/s"
    )
    if result["ratio_to_seed"] is not None:
        paired = result.get("paired_ratio_median", result["ratio_to_seed"])
        text += f"  x{result['ratio_to_seed']:.2f} (paired x{paired:.2f})"
    return f"{text}  [{windows}]"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=fracatlas_dir(),
        help="image folder with class sub-folders (default: $FRACATLAS_DIR)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the seed's warm-up window")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per pipeline (median, >= 3)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = available CPUs)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument(
        "--pack",
        type=int,
        nargs="*",
        default=[1, 2, 4],
        help="CUDA only: concurrent engine processes sharing the GPU",
    )
    parser.add_argument(
        "--schedule",
        choices=("auto", "interleaved", "sequential"),
        default="auto",
        help="auto: interleaved on CPU, sequential on CUDA",
    )
    parser.add_argument(
        "--variants",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="engine variants (auto: by device; gpu on CPU runs the GPU list, amp ignored)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument(
        "--compile-cases",
        nargs="*",
        choices=sorted(CASES),
        default=None,
        help="cases that get the torch.compile variant (default: all of --cases)",
    )
    parser.add_argument(
        "--epoch-images",
        type=int,
        default=12288,
        help="sequential schedule: images per engine epoch (= one timed window)",
    )
    parser.add_argument(
        "--pack-cases",
        nargs="*",
        choices=sorted(CASES),
        default=None,
        help="cases that get the packed rows (default: all of --cases)",
    )
    parser.add_argument(
        "--packed-only",
        action="store_true",
        help="only the packed rows (for --pack-cases), e.g. a second run under CUDA MPS",
    )
    parser.add_argument(
        "--tuning",
        action="store_true",
        help="with compile: also without cuDNN autotuning, with CUDA graphs, and batch 512",
    )
    parser.add_argument(
        "--pack-overrides",
        type=json.loads,
        default={},
        help="JSON engine settings for the packed processes, e.g. '{\"compile\": true}'",
    )
    parser.add_argument("--pack-on-cpu", action="store_true", help="run the packed rows on CPU too (smoke)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    write_report(args.out, **benchmark(args))


if __name__ == "__main__":
    main()
