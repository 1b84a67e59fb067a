"""Where one training step of the engine spends its time: augmentation, forward + loss, backward, optimiser.

    python benchmarks/step_profile.py --device cuda --out step_profile.json       # on a GPU (~1 min)
    python benchmarks/step_profile.py --device cpu --steps 5 --batch-sizes 8       # CPU smoke

For the seed's tuned CNN (tunable_cnn 32/128/256, its augmentation, Adam) at 128 px on random uint8 images,
for each batch size: the median time of each phase over ``--steps`` steps (CUDA events on the GPU, so the
phases are device time; wall clock on CPU), the step's wall time with one synchronisation at the end (how
the engine runs), and the number of kernels (CUDA) or operators (CPU) each phase launches, from
torch.profiler. On an H100 batch-32 steps are launch-bound (BENCHMARKS.md, "Training throughput"); this
says which phase launches what. Needs only torch, torchvision and numpy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_report import write_report
from torch.profiler import ProfilerActivity, profile

from fracture_tune.data.augment import SEED_AUGMENTATION
from fracture_tune.trainables.config import TrainConfig
from fracture_tune.trainables.device import (
    autocast,
    configure_cuda,
    images_to_device,
    normalise,
    to_unit_range,
)
from fracture_tune.trainables.models import build_model
from fracture_tune.trainables.trainer import EpochTrainer

TUNED = {
    "model": "tunable_cnn",
    "c1": 32,
    "c2": 128,
    "c3": 256,
    "dropout": 0.7,
    "lr": 0.0058,
    "aug_strength": 1.0,
    "channels_last": True,
    "amp": True,
    "epochs": 1,
}
PHASES = ("augment", "forward_loss", "backward", "optimizer")


def make_trainer(
    batch_size: int, device: torch.device, images: int = 512, size: int = 128, **overrides: Any
) -> EpochTrainer:
    config = TrainConfig.from_flat({**TUNED, "batch_size": batch_size, "device": device.type, **overrides})
    configure_cuda(config, device)  # as engine.fit does
    torch.manual_seed(0)
    model = build_model(config.model, input_size=size, **config.model_kwargs).to(device)
    model = model.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(images, size, size), dtype=np.uint8)
    labels = rng.integers(0, 2, size=images)
    return EpochTrainer(
        model=model,
        config=config,
        device=device,
        images=images_to_device(pixels, size, device),
        labels=labels,
        augmentation=SEED_AUGMENTATION.scaled(config.aug_strength),
    )


def phase_functions(trainer: EpochTrainer, rows: torch.Tensor) -> list[Callable[[Any], Any]]:
    """The engine's ``_train_step`` cut into its four phases (same calls, same order)."""
    from fracture_tune.data.augment import augment_batch

    cfg, device = trainer.config, trainer.device
    labels = trainer.labels[rows]

    def augment(_: Any) -> torch.Tensor:
        batch = augment_batch(to_unit_range(trainer.images[rows]), trainer.augmentation, trainer.augment_rng)
        return normalise(batch, cfg.channels_last)

    def forward_loss(batch: torch.Tensor) -> torch.Tensor:
        with autocast(cfg, device):
            logits = trainer.step_model(batch)
        return trainer.loss_fn(logits.float(), labels)

    def backward(loss: torch.Tensor) -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()

    def optimizer(_: Any) -> None:
        trainer.optimizer.step()
        trainer.scheduler.step()

    return [augment, forward_loss, backward, optimizer]


def timed_phases(trainer: EpochTrainer, steps: int, batch_size: int) -> dict[str, Any]:
    device = trainer.device
    cuda = device.type == "cuda"
    order = torch.randperm(trainer.images.shape[0], generator=torch.Generator().manual_seed(0)).to(device)
    times: dict[str, list[float]] = {name: [] for name in (*PHASES, "step_wall")}
    for step in range(steps + 2):  # two warm-up steps
        rows = order[(step * batch_size) % (order.numel() - batch_size) :][:batch_size]
        functions = phase_functions(trainer, rows)
        marks: list[Any] = []
        value: Any = None
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for function in functions:
            if cuda:
                event = torch.cuda.Event(enable_timing=True)
                event.record()
                marks.append(event)
            else:
                marks.append(time.perf_counter())
            value = function(value)
        if cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            marks.append(end)
            torch.cuda.synchronize()
        else:
            marks.append(time.perf_counter())
        wall = time.perf_counter() - started
        if step < 2:
            continue
        for index, name in enumerate(PHASES):
            if cuda:
                times[name].append(marks[index].elapsed_time(marks[index + 1]) / 1000)
            else:
                times[name].append(marks[index + 1] - marks[index])
        times["step_wall"].append(wall)
    return {name: statistics.median(values) * 1000 for name, values in times.items()}  # milliseconds


def launches_per_phase(trainer: EpochTrainer, batch_size: int) -> dict[str, int]:
    """Kernels (CUDA) or top-level operators (CPU) each phase launches in one step."""
    rows = torch.arange(batch_size, device=trainer.device)
    cuda = trainer.device.type == "cuda"
    counts = {}
    value: Any = None
    for name, function in zip(PHASES, phase_functions(trainer, rows), strict=True):
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            value = function(value)
            if cuda:
                torch.cuda.synchronize()
        events = prof.events()
        if cuda:
            counts[name] = sum(1 for event in events if event.device_type == torch.autograd.DeviceType.CUDA)
        else:
            counts[name] = sum(
                1 for event in events if event.name.startswith("aten::") and event.cpu_parent is None
            )
    return counts


def top_kernels(
    trainer: EpochTrainer, batch_size: int, steps: int = 5, count: int = 12
) -> list[dict[str, Any]]:
    """The ``count`` kernels (CUDA) or operators (CPU) with the most self time in whole training steps.

    Milliseconds and calls are per step (``steps`` profiled after one warm-up step), so a slow convolution
    algorithm or a flood of tiny kernels shows by name.
    """
    cuda = trainer.device.type == "cuda"
    rows = torch.arange(batch_size, device=trainer.device) % trainer.images.shape[0]
    trainer._train_step(trainer.images[rows], trainer.labels[rows])  # warm-up (and compile)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            trainer._train_step(trainer.images[rows], trainer.labels[rows])
        if cuda:
            torch.cuda.synchronize()
    wanted = torch.autograd.DeviceType.CUDA if cuda else torch.autograd.DeviceType.CPU
    events = [event for event in prof.key_averages() if event.device_type == wanted]
    if cuda:
        events.sort(key=lambda event: event.self_device_time_total, reverse=True)
        total_us = sum(event.self_device_time_total for event in events)
        return [
            {
                "name": event.key[:120],
                "calls_per_step": event.count / steps,
                "ms_per_step": event.self_device_time_total / 1000 / steps,
                "share": event.self_device_time_total / max(total_us, 1e-9),
            }
            for event in events[:count]
        ]
    events = [event for event in events if event.key.startswith("aten::")]
    events.sort(key=lambda event: event.self_cpu_time_total, reverse=True)
    total_us = sum(event.self_cpu_time_total for event in events)
    return [
        {
            "name": event.key[:120],
            "calls_per_step": event.count / steps,
            "ms_per_step": event.self_cpu_time_total / 1000 / steps,
            "share": event.self_cpu_time_total / max(total_us, 1e-9),
        }
        for event in events[:count]
    ]


def augment_device_ops(batch_size: int = 32, size: int = 128) -> dict[str, int]:
    """Non-view operators one ``augment_batch`` call runs on the images' device vs on the generator's (CPU).

    The images sit on the ``meta`` device (shapes only, no kernels), so this counts what would be GPU
    kernel launches on any machine; the engine draws with a CPU generator.
    """
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    from fracture_tune.data.augment import augment_batch

    class CountByDevice(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts: Counter[str] = Counter()

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            if not func.is_view:
                outputs = out if isinstance(out, tuple | list) else [out]
                for device in {o.device.type for o in outputs if isinstance(o, torch.Tensor)}:
                    self.counts[device] += 1
            return out

    images = torch.empty((batch_size, 1, size, size), device="meta")
    with CountByDevice() as counter:
        augment_batch(images, SEED_AUGMENTATION, torch.Generator().manual_seed(0))
    return {"images_device": counter.counts["meta"], "generator_device_cpu": counter.counts["cpu"]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true", help="profile the torch.compile'd model too")
    parser.add_argument("--top", type=int, default=12, help="kernels listed per profiled step (0 = none)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    augment_ops = augment_device_ops()
    print(
        f"augment_batch, batch 32: {augment_ops['images_device']} operators on the images' device, "
        f"{augment_ops['generator_device_cpu']} on the CPU generator's",
        flush=True,
    )
    results = []
    for batch_size in args.batch_sizes:
        trainer = make_trainer(batch_size, device)
        row = {
            "batch_size": batch_size,
            "milliseconds": timed_phases(trainer, args.steps, batch_size),
            "launches": launches_per_phase(trainer, batch_size),
        }
        results.append(row)
        ms, launches = row["milliseconds"], row["launches"]
        phases = "  ".join(f"{name} {ms[name]:.2f} ms/{launches[name]}" for name in PHASES)
        print(
            f"batch {batch_size}: step {ms['step_wall']:.2f} ms wall "
            f"({batch_size / ms['step_wall'] * 1000:.0f} img/s)  {phases}",
            flush=True,
        )
        variants = [("eager", trainer)]
        if args.compile:
            variants.append(("compiled", make_trainer(batch_size, device, compile=True)))
        for label, profiled in variants if args.top else []:
            row[f"top_kernels_{label}"] = kernels = top_kernels(profiled, batch_size, count=args.top)
            print(f"batch {batch_size} {label}: top kernels by self device time per step", flush=True)
            for kernel in kernels:
                print(
                    f"  {kernel['ms_per_step']:7.3f} ms {kernel['share']:6.1%} "
                    f"x{kernel['calls_per_step']:<5g} {kernel['name']}",
                    flush=True,
                )
    write_report(
        args.out,
        device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        torch=torch.__version__,
        augment_ops=augment_ops,
        results=results,
    )


if __name__ == "__main__":
    main()
