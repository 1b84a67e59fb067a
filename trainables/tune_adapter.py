"""The one module that calls Ray Tune: the engine as a Tune function trainable.

Use it as ``tune.with_parameters(train_trial, data=arrays)``: the arrays travel once through Ray's object
store and every trial reads them zero-copy (read-only; the engine copies what it moves to its device).
Each epoch reports the engine's metrics plus ``node_id`` (a string: where the trial ran) and a
checkpoint directory holding the full training state; a restarted trial resumes from
``tune.get_checkpoint()`` at the next epoch.
"""

from __future__ import annotations

import gc
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from fracture_tune.data.dataset import DatasetArrays
    from fracture_tune.trainables.engine import Snapshot

# torch and the engine are imported inside the functions, in the trial's worker: the search's driver
# only passes ``train_trial`` to Tune (by reference) and never needs torch (~1.3 s of every search's start).

log = logging.getLogger(__name__)

_trials_started = 0


def freeze_long_lived_objects() -> None:
    """At the second trial of a worker process: freeze what survives a collection (``gc.freeze``), once.

    A worker holds hundreds of thousands of gc-tracked objects once torch and Ray are imported (~480k when
    scikit-learn was imported too; much of it lazily, during its first trial); the collection at the end of
    every trial walked all of them — 0.25–0.3 s on the 2-core VM, a quarter of a 1-s trial (what is left:
    BENCHMARKS.md, "Overheads"). Frozen, later collections scan only what trials create. Not earlier: at the
    first trial's end its model is still referenced (an ASHA-stopped trial ends inside ``tune.report`` and its
    frames are alive in the ``finally``), and a frozen object in a reference cycle is never collected; by the
    second trial's start it is gone.
    """
    global _trials_started
    _trials_started += 1
    if _trials_started == 2:
        gc.collect()
        gc.freeze()


def trial_resources_config(config: dict[str, Any], assigned: dict[str, float]) -> dict[str, Any]:
    """Fill ``num_threads`` and ``device`` from the resources Ray assigned to the trial.

    Explicit values in ``config`` win; ``device=auto`` means CUDA only when the trial holds a GPU
    (a trial without one must not touch a GPU another trial was given).
    """
    import torch

    flat = dict(config)
    if not flat.get("num_threads"):
        flat["num_threads"] = max(1, int(assigned.get("CPU", 1)))
    if flat.get("device", "auto") == "auto":
        flat["device"] = "cuda" if assigned.get("GPU", 0) > 0 and torch.cuda.is_available() else "cpu"
    return flat


def train_trial(config: dict[str, Any], data: DatasetArrays, folds: np.ndarray | None = None) -> None:
    """Tune function trainable: fit ``config`` on ``data``, reporting and checkpointing every epoch.

    With ``folds`` (``data/folds.py``: a fold index per train/validation row), the trial trains one model
    per fold and reports the fold means (``engine.fit_folds``): the cross-validated objective.
    """
    import ray
    import torch
    from ray import tune

    from fracture_tune.trainables.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
    from fracture_tune.trainables.engine import fit, fit_folds

    freeze_long_lived_objects()
    context = ray.get_runtime_context()
    node_id = context.get_node_id()
    flat = trial_resources_config(config, context.get_assigned_resources())

    resume_state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            resume_state = load_checkpoint(Path(directory) / CHECKPOINT_FILE)
        log.info("resuming trial after epoch %s", resume_state["epoch"])

    def report(metrics: dict[str, float], snapshot: Snapshot) -> None:
        with tempfile.TemporaryDirectory(prefix="fracture-tune-ckpt-") as directory:
            save_checkpoint(Path(directory) / CHECKPOINT_FILE, snapshot())
            # tune.report persists the directory to the run's storage before it returns.
            tune.report({**metrics, "node_id": node_id}, checkpoint=tune.Checkpoint.from_directory(directory))

    result = None
    try:
        if folds is None:
            result = fit(flat, data, callbacks=[report], resume_state=resume_state)
        else:
            fit_folds(flat, data, folds, callbacks=[report], resume_state=resume_state)
    finally:
        # ASHA-stopped trials end inside tune.report (SystemExit); free the GPU for the next trial either way.
        del result
        gc.collect()  # tensors in reference cycles; after the freeze it scans only this trial's objects
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
