"""The seed's base-CNN recipe (docs/seed_recipes.md), as the side-by-side row of every retrain report.

base_cnn (conv 16/32/64, fc 128), Adam lr 1e-3, batch 16, cross entropy, no augmentation — trained here on
the same prepared split and for the same number of epochs as the optimized model, so the two rows differ
only in what the search chose.
"""

from __future__ import annotations

from typing import Any

SEED_BASE_RECIPE: dict[str, Any] = {
    "model": "base_cnn",
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 16,
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup_epochs": 0.0,
    "label_smoothing": 0.0,
    "class_weighting": "none",
    "grad_clip": 0.0,
    "aug_strength": 0.0,
    "aug_factor": 1,
}

# Settings about where/how fast to run, not what to learn: the baseline inherits them from the optimized run.
_EXECUTION_KEYS = (
    "input_size",
    "device",
    "num_threads",
    "channels_last",
    "amp",
    "compile",
    "compile_mode",
    "cudnn_benchmark",
    "seed",
)


def base_recipe_config(optimized: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The seed's base recipe with the optimized run's epochs, input size, device and seed."""
    config = dict(SEED_BASE_RECIPE)
    config["epochs"] = int(epochs)
    for key in _EXECUTION_KEYS:
        if key in optimized:
            config[key] = optimized[key]
    return config
