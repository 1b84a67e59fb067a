"""What the engine and the trainable accept and report (docs/contracts.md), for config validation.

Static tables, so validating a config (and starting a search's driver) never imports torch: the engine's
own lists live in ``trainables`` (``TrainConfig``'s fields, the model registry), and
tests/unit/test_engine_keys.py keeps these equal to them — add a model or an engine key there and here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.space import ParamSpec

TRAINABLE_METRICS: frozenset[str] = frozenset(
    {
        "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_auroc",
        "val_sensitivity", "val_specificity", "val_f1",
    }
)

# TrainConfig's flat keys (every model takes them).
CONTRACT_ENGINE_KEYS: frozenset[str] = frozenset(
    {
        "model", "epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
        "warmup_epochs", "label_smoothing", "class_weighting", "grad_clip", "aug_strength", "aug_factor",
        "input_size", "seed", "train_limit", "val_limit", "device", "num_threads", "channels_last", "amp",
        "compile", "compile_mode", "cudnn_benchmark",
    }
)
# Constructor arguments of each registered model (trainables.models.model_params).
CONTRACT_MODEL_PARAMS: dict[str, frozenset[str]] = {
    "base_cnn": frozenset(),
    "enhanced_cnn": frozenset(),
    "tunable_cnn": frozenset({"c1", "c2", "c3", "dropout"}),
    "deep_cnn": frozenset({"depth", "width", "kernel_size", "batch_norm", "dropout"}),
    "resnet18": frozenset({"pretrained_path"}),
    "tiny_cnn": frozenset({"width"}),
}
CONTRACT_MODEL_KEYS: frozenset[str] = frozenset().union(*CONTRACT_MODEL_PARAMS.values())


def engine_keys() -> frozenset[str]:
    """Every flat key ``TrainConfig.from_flat`` accepts for some registered model."""
    return CONTRACT_ENGINE_KEYS | CONTRACT_MODEL_KEYS


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


# Fixed values that must be strictly positive (lr <= 0 never trains) or non-negative.
POSITIVE_KEYS = frozenset({"lr", "epochs", "batch_size", "input_size", "aug_factor"})
NON_NEGATIVE_KEYS = frozenset(
    {"weight_decay", "label_smoothing", "aug_strength", "warmup_epochs", "momentum"}
)


def _check_value(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if name in POSITIVE_KEYS and value <= 0:
        raise FractureTuneError(f"training.{name}: must be > 0, got {value}")
    if name in NON_NEGATIVE_KEYS and value < 0:
        raise FractureTuneError(f"training.{name}: must be >= 0, got {value}")


def check_engine_keys(training: dict[str, Any], params: dict[str, ParamSpec]) -> None:
    """Reject fixed values or space parameters the engine would not know, naming the key.

    The check is per model: a key is accepted for every model the search can pick (fixed, or a choice of
    the ``model`` parameter) whose conditions let it through.
    """
    for name, value in training.items():
        _check_value(name, value)
    known = engine_keys()
    for section, names in (("training", list(training)), ("space.params", list(params))):
        for name in names:
            if name in known:
                continue
            guess = did_you_mean(name, known)
            hint = f"did you mean {guess!r}?" if guess else f"engine keys: {', '.join(sorted(known))}"
            raise FractureTuneError(f"{section}.{name}: the training engine has no key {name!r}", hint=hint)
    _check_per_model(training, params, CONTRACT_ENGINE_KEYS, CONTRACT_MODEL_PARAMS)


def _check_per_model(
    training: dict[str, Any], params: dict[str, ParamSpec], common: frozenset[str],
    per_model: dict[str, frozenset[str]],
) -> None:
    model_spec = params.get("model")
    if model_spec is not None:
        models, where = [str(choice) for choice in model_spec.choices or []], "space.params.model"
    else:
        models, where = [str(training.get("model", "base_cnn"))], "training.model"
    for model in models:
        if model not in per_model:
            raise FractureTuneError(
                f"{where}: unknown model {model!r}", hint=f"registered models: {', '.join(sorted(per_model))}"
            )
        accepted = common | per_model[model]
        used = [("training", key) for key in training] + [
            ("space.params", key) for key, spec in params.items()
            if model in [str(v) for v in spec.when.get("model", [model])]
        ]
        for section, key in used:
            if key not in accepted:
                raise FractureTuneError(
                    f"{section}.{key}: model {model!r} takes no parameter {key!r}",
                    hint=f"make it conditional: when: {{model: [...]}}; {model} takes: "
                    f"{', '.join(sorted(per_model[model])) or 'no model parameters'}",
                )
