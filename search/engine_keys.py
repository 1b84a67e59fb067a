"""What the engine and the trainable accept and report (docs/contracts.md), for config validation.

The authoritative lists live in ``trainables``; when that package can tell us its keys we ask it, so the
config never drifts from the engine. The static lists below mirror the contract for the keys it fixes.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from data.errors import FractureTuneError
from search.space import ParamSpec

TRAINABLE_METRICS: frozenset[str] = frozenset(
    {
        "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_balanced_accuracy", "val_auroc",
        "val_sensitivity", "val_specificity", "val_f1",
    }
)

CONTRACT_ENGINE_KEYS: frozenset[str] = frozenset(
    {
        "model", "epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "schedule",
        "warmup_epochs", "label_smoothing", "class_weighting", "grad_clip", "aug_strength", "aug_factor",
        "input_size", "seed", "train_limit", "val_limit", "device", "num_threads", "channels_last", "amp",
        "compile", "compile_mode", "cudnn_benchmark",
    }
)
# Model constructor arguments of the registered models (tunable_cnn's widths and dropout, deep_cnn's shape,
# resnet18's local weights file); tests/unit/test_engine_keys.py keeps this equal to the registry's.
CONTRACT_MODEL_KEYS: frozenset[str] = frozenset(
    {"c1", "c2", "c3", "dropout", "depth", "width", "kernel_size", "batch_norm", "pretrained_path"}
)


def _engine_schema() -> tuple[frozenset[str], dict[str, frozenset[str]]] | None:
    """(common keys, model → its kwargs) from the engine itself, or None if it cannot be imported."""
    try:  # the engine pulls in torch; a broken install falls back to the contract's lists
        import dataclasses

        from trainables.config import TrainConfig
        from trainables.models import list_models, model_params
    except Exception:  # noqa: BLE001
        return None
    common = {f.name for f in dataclasses.fields(TrainConfig) if f.name != "model_kwargs"}
    return frozenset(common), {name: frozenset(model_params(name)) for name in list_models()}


def engine_keys() -> frozenset[str]:
    """Every flat key ``TrainConfig.from_flat`` accepts for some registered model."""
    schema = _engine_schema()
    if schema is None:
        return CONTRACT_ENGINE_KEYS | CONTRACT_MODEL_KEYS
    common, per_model = schema
    return common.union(*per_model.values())


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

    With the engine importable the check is per model: a key is accepted for every model the search can
    pick (fixed, or a choice of the ``model`` parameter) whose conditions let it through.
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
    schema = _engine_schema()
    if schema is not None:
        _check_per_model(training, params, *schema)


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
