"""The one module that calls Ray Tune: the engine as a Tune function trainable.

Use it as ``tune.with_parameters(train_trial, data=arrays, score_rule=rule)``: the arrays travel once
through Ray's object store and every trial reads them zero-copy (read-only; the engine copies what it moves
to its device). Each epoch reports the engine's metrics, the trial's score by ``score_rule``
(``trainables/score.py``: ``score``, ``score_epoch``, ``epoch_score`` — what ASHA, the searcher and the
checkpoint keeper rank on),
``node_id`` (a string: where the trial ran) and a checkpoint directory holding the full training state; a
restarted trial resumes from ``tune.get_checkpoint()`` at the next epoch.

A worker that ran one trial runs the next (``reuse_actors``): ``ReusableTrialWorker`` waits for the previous
trial's training thread to end before the hand-over (Ray waits 2 s, which a loaded machine misses), and
the search's driver starts the trial on a fresh worker when a hand-over still fails
(``search/worker_handover.py``).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fracture_tune.trainables.score import ScoreRule

if TYPE_CHECKING:
    import numpy as np

    from fracture_tune.data.dataset import DatasetArrays
    from fracture_tune.trainables.engine import Snapshot

# torch and the engine are imported inside the functions, in the trial's worker: the search's driver
# only passes ``train_trial`` to Tune (by reference) and never needs torch (~1.3 s of every search's start).

log = logging.getLogger(__name__)

_trials_started = 0
# How long a reused worker waits for the previous trial's training thread to end before taking the next trial.
# The thread has been told to stop and only has to unwind (free its model, one collection); Ray's default of
# 2 s is missed when 16 workers share 2 cores, and Ray then fails the NEXT trial without running it. Ray's own
# setting, TUNE_FUNCTION_THREAD_TIMEOUT_S, wins when the user has set it.
HANDOVER_WAIT_S = 120
HANDOVER_WAIT_SETTING = "TUNE_FUNCTION_THREAD_TIMEOUT_S"
# The checkpoint folder names the epoch it holds, so the driver's checkpoint keeper needs no file reads.
EPOCH_MARKER = "epoch.txt"

FitFunction = Callable[..., Any]


class ReusableTrialWorker:
    """Mixed into Ray's function trainable (``train_trial.__mixins__``): a longer wait at the hand-over."""

    def reset_config(self, new_config: dict[str, Any]) -> bool:
        os.environ.setdefault(HANDOVER_WAIT_SETTING, str(HANDOVER_WAIT_S))
        return bool(super().reset_config(new_config))  # type: ignore[misc]


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


def metric_history(resume_state: dict[str, Any] | None, metric: str) -> list[float]:
    """The metric per epoch of a checkpoint's history (empty for a fresh trial)."""
    if resume_state is None:
        return []
    return [float(row.get(metric, math.nan)) for row in resume_state.get("history", [])]


def scored_report(
    score_rule: ScoreRule, history: list[float], metrics: dict[str, float], node_id: str
) -> dict[str, Any]:
    """One epoch's result: the engine's metrics, the trial's score so far and where it ran."""
    history.append(float(metrics.get(score_rule.metric, math.nan)))
    return {**metrics, **score_rule.report(history), "node_id": node_id}


def train_trial(
    config: dict[str, Any],
    data: DatasetArrays,
    folds: np.ndarray | None = None,
    score_rule: ScoreRule | None = None,
    fit_function: FitFunction | None = None,
) -> None:
    """Tune function trainable: fit ``config`` on ``data``, reporting and checkpointing every epoch.

    With ``folds`` (``data/folds.py``: a fold index per train/validation row), the trial trains one model
    per fold and reports the fold means (``engine.fit_folds``): the cross-validated objective.
    ``fit_function`` replaces the engine (same signature as ``engine.fit``): the scale benchmark times the
    search's bookkeeping with a fixed-time step.
    """
    import ray
    import torch
    from ray import tune

    from fracture_tune.trainables.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint

    rule = score_rule or ScoreRule()
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
    history = metric_history(resume_state, rule.metric)

    def report(metrics: dict[str, float], snapshot: Snapshot) -> None:
        result = scored_report(rule, history, metrics, node_id)
        with tempfile.TemporaryDirectory(prefix="fracture-tune-ckpt-") as directory:
            save_checkpoint(Path(directory) / CHECKPOINT_FILE, snapshot())
            (Path(directory) / EPOCH_MARKER).write_text(str(len(history)), encoding="utf-8")
            # tune.report persists the directory to the run's storage before it returns.
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(directory))

    result = None
    try:
        result = _fit(flat, data, folds, report, resume_state, fit_function)
    finally:
        # ASHA-stopped trials end inside tune.report (SystemExit); free the GPU for the next trial either way.
        del result
        gc.collect()  # tensors in reference cycles; after the freeze it scans only this trial's objects
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _fit(
    flat: dict[str, Any],
    data: DatasetArrays,
    folds: np.ndarray | None,
    report: Callable[[dict[str, float], Snapshot], None],
    resume_state: dict[str, Any] | None,
    fit_function: FitFunction | None,
) -> Any:
    if fit_function is not None:
        return fit_function(flat, data, callbacks=[report], resume_state=resume_state)
    from fracture_tune.trainables.engine import fit, fit_folds

    if folds is None:
        return fit(flat, data, callbacks=[report], resume_state=resume_state)
    return fit_folds(flat, data, folds, callbacks=[report], resume_state=resume_state)


# Ray builds the trial's worker class from the function and these mixins (ray.tune.trainable.wrap_function).
train_trial.__mixins__ = (ReusableTrialWorker,)  # type: ignore[attr-defined]
