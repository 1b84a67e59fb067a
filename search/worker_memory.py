"""Do the trials at once fit in memory? A trial worker's memory, estimated, against each Ray node's.

Ray's memory monitor kills a worker once its node's memory is ~95 % used, so a search that runs more trials
at once than a node's memory holds sees its workers killed and its trials retried until they error (64
tiny-model trials at once on the 24 GiB VM: BENCHMARKS.md, "Real training"). A trial's worker holds Python,
Ray and torch — ``WORKER_BASE_BYTES``, measured there — plus its model's weights, gradients and optimizer
state and one batch's activations. Those two are computed from the model built on PyTorch's meta device (no
memory, no weights) at the largest sizes the search can sample: the largest batch, input side and widths.

It is an estimate to warn by, not a limit: the search goes on, and the warning says how many trials at once
fit.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from fracture_tune.search.config import ExperimentConfig
from fracture_tune.search.space import ParamSpec
from fracture_tune.trainables.engine_keys import ENGINE_KEYS, MODEL_KEYS

logger = logging.getLogger(__name__)

# A trial worker's resident memory with Python, Ray and torch loaded and the tiny model training: 0.30-0.34 GB
# (benchmarks/scale_training.py on the 2-core VM).
WORKER_BASE_BYTES = 300_000_000
# Of what Ray saw free on a node at its start (its "memory" and "object_store_memory" resources), the share
# the workers may fill: the memory monitor acts at 95 % of the node's memory; the driver and Ray need some.
USABLE_SHARE = 0.9
FLOAT_BYTES = 4
# Per parameter: the weights, their gradients and Adam's two moments.
STATE_COPIES = 4
# Per activation: its value, kept for backward (the gradients flowing back are freed layer by layer).
# Against peak RSS growth over two Adam steps (benchmarks/worker_memory.py), the estimate with one copy is
# 5-11 % above for the shipped configs' largest 128-px trials (1.3-2.9 GB) and 0.03-0.25 GB below for 64-px
# ones, where PyTorch's first-step buffers dominate (WORKER_BASE_BYTES, measured while training, holds some).
ACTIVATION_COPIES = 1


@dataclass(frozen=True)
class LargestTrial:
    """The largest trial a search can sample for one model."""

    model: str
    model_kwargs: dict[str, Any]
    input_size: int
    batch_size: int


def largest_trials(config: ExperimentConfig) -> list[LargestTrial]:
    """For each model the search can sample, its largest trial: every numeric size at its maximum."""
    params = config.space.resolved_params()
    training = config.training
    model_spec = params.get("model")
    models = (
        [str(choice) for choice in model_spec.choices or []]
        if model_spec
        else [str(training.get("model", ENGINE_KEYS["model"].default))]
    )
    input_size = int(_largest(training, params, "input_size") or config.dataset.image_size)
    batch_size = int(_largest(training, params, "batch_size") or ENGINE_KEYS["batch_size"].default)
    trials = []
    for model in models:
        kwargs: dict[str, Any] = {}
        for name, key in MODEL_KEYS[model].items():
            if key.kind in (int, float):  # sizes and rates; bool and str keys do not size memory
                value = _largest(training, params, name)
                if value is not None:
                    kwargs[name] = key.kind(value)
        trials.append(LargestTrial(model, kwargs, input_size, batch_size))
    return trials


def _largest(training: dict[str, Any], params: dict[str, ParamSpec], name: str) -> float | None:
    spec = params.get(name)
    if spec is None:
        value = training.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if spec.choices:
        numbers = [float(c) for c in spec.choices if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return max(numbers) if numbers else None
    return float(spec.high) if spec.high is not None else None


def training_bytes(trial: LargestTrial) -> int:
    """Weights, gradients and optimizer state, and one batch's activations, of ``trial``'s model."""
    import torch

    from fracture_tune.trainables.models import build_model

    kwargs = dict(trial.model_kwargs)
    if "pretrained_path" in MODEL_KEYS[trial.model]:
        kwargs["pretrained_path"] = ""  # the weights' values do not change their size
    activations = 0

    def count(module: Any, inputs: Any, output: Any) -> None:
        nonlocal activations
        if isinstance(output, torch.Tensor):
            activations += output.numel()

    with torch.device("meta"):
        model = build_model(trial.model, input_size=trial.input_size, **kwargs)
        leaves = [module for module in model.modules() if not any(module.children())]
        handles = [module.register_forward_hook(count) for module in leaves]
        try:
            model(torch.empty(trial.batch_size, 1, trial.input_size, trial.input_size))
        finally:
            for handle in handles:
                handle.remove()
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return FLOAT_BYTES * (STATE_COPIES * parameters + ACTIVATION_COPIES * activations)


def worker_bytes(config: ExperimentConfig) -> int:
    """The estimated memory of the search's largest trial worker (the base alone where a model cannot be
    built on the meta device: the estimate must never stop a search).

    The models are counted in a child process: the driver never imports torch otherwise (it would add ~0.3 GB
    to the driver's memory for the whole search)."""
    trials = [dataclasses.asdict(trial) for trial in largest_trials(config)]
    done = subprocess.run(
        [sys.executable, "-m", "fracture_tune.search.worker_memory"],
        input=json.dumps(trials),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        logger.debug("no memory estimate: %s", done.stderr[-2000:])
        return WORKER_BASE_BYTES
    return WORKER_BASE_BYTES + int(done.stdout.strip().splitlines()[-1])


def _largest_training_bytes(trials: list[dict[str, Any]]) -> int:
    largest = 0
    for fields in trials:
        trial = LargestTrial(**fields)
        try:
            largest = max(largest, training_bytes(trial))
        except Exception as error:  # noqa: BLE001 - a model the meta device cannot run: base only
            logger.debug("no memory estimate for %s: %s", trial.model, error)
    return largest


def trials_at_once(config: ExperimentConfig, resources: dict[str, float]) -> int:
    """How many of the search's trials a node with ``resources`` runs at once."""
    wanted = config.resources
    fits = [
        wanted.max_concurrent_trials,
        config.budget.num_trials,
        math.floor(resources.get("CPU", 0) / wanted.cpus_per_trial),
    ]
    if wanted.gpus_per_trial:
        fits.append(math.floor(resources.get("GPU", 0) / wanted.gpus_per_trial))
    return max(0, min(fits))


def memory_warnings(config: ExperimentConfig, nodes: list[dict[str, Any]]) -> list[str]:
    """One line per Ray node (``ray.nodes()``) whose trials at once would not fit its memory."""
    lines = []
    each = 0
    for node in nodes:
        if not node.get("Alive", True):
            continue
        resources = node.get("Resources", {})
        at_once = trials_at_once(config, resources)
        if at_once < 2:  # one trial at a time: nothing to estimate (it takes seconds)
            continue
        each = each or worker_bytes(config)
        usable = USABLE_SHARE * (resources.get("memory", 0) + resources.get("object_store_memory", 0))
        if at_once * each <= usable:
            continue
        fit = max(1, math.floor(usable / each))
        address = node.get("NodeManagerAddress", "?")
        lines.append(
            f"node {address} may run {at_once} trials at once, ~{each / 1e9:.2f} GB a trial worker: "
            f"~{at_once * each / 1e9:.1f} GB, more than the ~{usable / 1e9:.1f} GB its workers can use; "
            f"Ray's memory monitor would kill workers and their trials would retry or error. About {fit} "
            f"fit: --set resources.max_concurrent_trials={fit}, or give the node fewer CPUs (--num-cpus)"
        )
    return lines


if __name__ == "__main__":  # worker_bytes' child: the largest trials as JSON on stdin, their bytes out
    print(_largest_training_bytes(json.loads(sys.stdin.read())))
