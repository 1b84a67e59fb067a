"""`TrainConfig`: one trial's training settings, built from the flat dict a search samples.

Defaults are the seed's (Adam, lr 1e-3, batch 32, 30 epochs, cross entropy, no augmentation).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.trainables.models import model_params

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "onecycle", "step")
CLASS_WEIGHTINGS = ("none", "balanced")
DEVICES = ("auto", "cpu", "cuda")
# torch.compile modes: reduce-overhead adds CUDA graphs (one launch per graph instead of one per kernel).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "base_cnn"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    class_weighting: str = "none"
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    aug_strength: float = 0.0  # multiplier of the seed's augmentation; 0 = none, 1 = the seed's
    aug_factor: int = 1  # epoch multiplier: each train image is seen this many times per epoch
    input_size: int = 0  # 0 = the cache's image size
    seed: int = 0
    train_limit: int = 0  # 0 = all; else a seeded random slice of the train split (the seed's protocol)
    val_limit: int = 0
    device: str = "auto"
    num_threads: int = 0  # 0 = the CPUs this process may use
    channels_last: bool = True
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False
    compile_mode: str = "default"  # with compile: one of COMPILE_MODES
    cudnn_benchmark: bool = True  # CUDA: cuDNN times its convolution algorithms once per batch shape

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> TrainConfig:
        """Build from flat keys (docs/contracts.md); model kwargs are the keys the chosen model accepts."""
        flat = dict(flat)
        model = str(flat.pop("model", cls.model))
        accepted = model_params(model)
        model_kwargs = {key: _coerce(key, flat.pop(key), default) for key, default in accepted.items()
                        if key in flat}
        defaults = {f.name: f.default for f in dataclasses.fields(cls)
                    if f.name not in ("model", "model_kwargs")}
        unknown = sorted(set(flat) - set(defaults))
        if unknown:
            valid = sorted(set(defaults) | set(accepted) | {"model"})
            raise FractureTuneError(
                f"unknown training key(s) {', '.join(map(repr, unknown))} for model {model!r}; "
                f"valid keys: {', '.join(valid)}",
                hint="check the spelling, or pick a model that takes this parameter",
            )
        values = {key: _coerce(key, value, defaults[key]) for key, value in flat.items()}
        config = cls(model=model, model_kwargs=model_kwargs, **values)
        config.validate()
        return config

    def to_flat(self) -> dict[str, Any]:
        """The inverse of ``from_flat``: plain Python scalars only (safe for weights_only checkpoints)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model_kwargs"}
        flat.update(self.model_kwargs)
        return flat

    def validate(self) -> None:
        choices = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "class_weighting": CLASS_WEIGHTINGS,
                   "device": DEVICES, "compile_mode": COMPILE_MODES}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise FractureTuneError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        positive = ("epochs", "batch_size", "lr", "aug_factor")
        non_negative = ("momentum", "weight_decay", "warmup_epochs", "grad_clip", "aug_strength",
                        "input_size", "train_limit", "val_limit", "num_threads")
        for key in positive + non_negative:
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0 or (key in positive and value == 0):
                bound = "> 0" if key in positive else ">= 0"
                raise FractureTuneError(f"{key}={value!r} must be {bound}",
                                        hint=f"set {key} to a value {bound}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise FractureTuneError(f"label_smoothing={self.label_smoothing!r} must be in [0, 1)")


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Cast a sampled value (numpy scalar, int-valued float, "true") to the type of the default."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if kind is int:
            as_float = float(value)
            if not as_float.is_integer():
                raise ValueError(value)
            return int(as_float)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError) as error:
        raise FractureTuneError(
            f"{key}={value!r} is not a valid {kind.__name__}", hint=f"e.g. {key}={default!r}"
        ) from error
    return value
