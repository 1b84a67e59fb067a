"""Where a trial runs and how pixels become model input: shared by training and ``predict_proba``."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.config import TrainConfig

# Images moved/resized per chunk, so a large split never needs a float copy of itself on the device.
_CHUNK = 1024


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FractureTuneError(
            "device='cuda' was requested but no CUDA device is visible",
            hint="set device=auto or device=cpu, or request a GPU for the trial",
        )
    return torch.device(name)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no affinity API
        return os.cpu_count() or 1


def configure_threads(config: TrainConfig, device: torch.device) -> int:
    threads = config.num_threads or available_cpus()
    if device.type == "cpu" and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def configure_cuda(config: TrainConfig, device: torch.device) -> None:
    """cuDNN autotuning for this process's convolutions: a trial's batch shapes are fixed, so it pays once."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.cudnn_benchmark


def images_to_device(
    images: np.ndarray | torch.Tensor, input_size: int, device: torch.device
) -> torch.Tensor:
    """uint8 [N, H, W] → uint8 [N, 1, S, S] on ``device``, resized (bilinear, antialiased) when S ≠ H.

    Resizing once per split (rounded back to uint8) keeps the split small on the device; training and
    inference call this same function, so both see identical pixels.
    """
    source = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if source.dtype != torch.uint8 or source.dim() != 3:
        raise FractureTuneError(f"expected uint8 images [N, H, W], got {source.dtype} {tuple(source.shape)}")
    if source.shape[-1] == input_size and source.shape[-2] == input_size:
        return source.to(device).unsqueeze(1)
    chunks = []
    for start in range(0, source.shape[0], _CHUNK):
        chunk = source[start : start + _CHUNK].to(device).unsqueeze(1).float()
        resized = F.interpolate(
            chunk, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False
        )
        chunks.append(resized.round_().clamp_(0, 255).to(torch.uint8))
    if not chunks:
        return torch.empty((0, 1, input_size, input_size), dtype=torch.uint8, device=device)
    return torch.cat(chunks)


def to_unit_range(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float().div_(255.0)


def normalise(unit_images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The seed's ToTensor + Normalize((0.5,), (0.5,)): [0, 1] → [-1, 1]."""
    out = unit_images.sub(0.5).div_(0.5)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def autocast(config: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA when ``amp``; CPU runs in float32."""
    if device.type == "cuda" and config.amp:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def detached_cpu_copy(value: Any) -> Any:
    """A deep copy with every tensor cloned to CPU, so a snapshot is not changed by later training."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, np.generic):  # numpy scalars are not weights_only-safe
        return value.item()
    if isinstance(value, dict):
        return {key: detached_cpu_copy(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(detached_cpu_copy(item) for item in value)
    return value
