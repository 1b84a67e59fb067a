"""Save and load the full training state, atomically, readable with ``weights_only=True``.

The state is what ``fit``'s ``snapshot()`` returns: model/optimiser/scheduler state dicts, the epoch
just completed, the history of per-epoch metrics, RNG states (torch, numpy, the engine's own generators)
and the flat config. Only tensors, numbers, strings, lists and dicts go in, so loading never unpickles
arbitrary objects.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fracture_tune.errors import FractureTuneError

CHECKPOINT_FILE = "training_state.pt"


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` (a file, or a directory to hold CHECKPOINT_FILE); atomic rename."""
    target = Path(path)
    if target.is_dir():
        target = target / CHECKPOINT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(state, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a state written by ``save_checkpoint`` (a file, or the directory holding it)."""
    source = Path(path)
    if source.is_dir():
        source = source / CHECKPOINT_FILE
    if not source.is_file():
        raise FractureTuneError(
            f"no training checkpoint at {str(source)!r}",
            hint="pass the checkpoint file or the trial's checkpoint directory",
        )
    try:
        state = torch.load(source, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated or foreign file: the user's input, not our bug
        raise FractureTuneError(
            f"cannot read training checkpoint {str(source)!r}: {error}",
            hint="the file is damaged or not written by fracture-tune",
        ) from error
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise FractureTuneError(f"{str(source)!r} is not a fracture-tune training checkpoint")
    return state


def numpy_rng_state() -> dict[str, Any]:
    """numpy's global RNG state as tensors and scalars (numpy arrays are not weights_only-safe)."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "kind": str(kind),
        "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def restore_numpy_rng_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["kind"], keys, state["position"], state["has_gauss"], state["cached_gaussian"])
    )
