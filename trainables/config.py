"""`TrainConfig`: one trial's training settings, built from the flat dict a search samples.

Keys, types, defaults and bounds come from the engine's key table (``trainables/engine_keys.py``); the
defaults are the seed notebook's (Adam, lr 1e-3, batch 32, 30 epochs, cross entropy, no augmentation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from fracture_tune.errors import FractureTuneError, did_you_mean
from fracture_tune.trainables.engine_keys import ENGINE_KEYS, keys_for, model_keys, unknown_key_hint

_K = ENGINE_KEYS


@dataclass(frozen=True)
class TrainConfig:
    model: str = _K["model"].default
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = _K["epochs"].default
    batch_size: int = _K["batch_size"].default
    lr: float = _K["lr"].default
    optimizer: str = _K["optimizer"].default
    momentum: float = _K["momentum"].default
    weight_decay: float = _K["weight_decay"].default
    schedule: str = _K["schedule"].default
    warmup_epochs: float = _K["warmup_epochs"].default
    label_smoothing: float = _K["label_smoothing"].default
    class_weighting: str = _K["class_weighting"].default
    grad_clip: float = _K["grad_clip"].default
    aug_strength: float = _K["aug_strength"].default
    aug_factor: int = _K["aug_factor"].default
    input_size: int = _K["input_size"].default
    seed: int = _K["seed"].default
    train_limit: int = _K["train_limit"].default
    val_limit: int = _K["val_limit"].default
    device: str = _K["device"].default
    num_threads: int = _K["num_threads"].default
    channels_last: bool = _K["channels_last"].default
    amp: bool = _K["amp"].default
    compile: bool = _K["compile"].default
    compile_mode: str = _K["compile_mode"].default
    cudnn_benchmark: bool = _K["cudnn_benchmark"].default

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> TrainConfig:
        """Build from flat keys (docs/contracts.md); model kwargs are the keys the chosen model accepts.

        Every value is coerced to its key's type and checked against the key table; an unknown key or a
        bad value raises ``FractureTuneError`` naming it.
        """
        flat = dict(flat)
        model = _coerced(ENGINE_KEYS["model"], flat.pop("model", cls.model))
        accepted = keys_for(model)
        unknown = sorted(set(flat) - set(accepted))
        if unknown:
            raise FractureTuneError(
                f"unknown training key(s) {', '.join(map(repr, unknown))} for model {model!r}; "
                f"valid keys: {', '.join(sorted(accepted))}",
                hint=unknown_key_hint(unknown[0], accepted)
                if did_you_mean(unknown[0], accepted)
                else "check the spelling, or pick a model that takes this parameter",
            )
        own = model_keys(model)
        model_kwargs = {name: _coerced(own[name], flat.pop(name)) for name in list(flat) if name in own}
        values = {name: _coerced(ENGINE_KEYS[name], value) for name, value in flat.items()}
        config = cls(model=model, model_kwargs=model_kwargs, **values)
        config.validate()
        return config

    def to_flat(self) -> dict[str, Any]:
        """The inverse of ``from_flat``: plain Python scalars only (safe for weights_only checkpoints)."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model_kwargs"}
        flat.update(self.model_kwargs)
        return flat

    def validate(self) -> None:
        """Every value within its key's type, bounds and choices (the key table)."""
        keys = keys_for(self.model)
        for name, value in self.to_flat().items():
            key = keys.get(name)
            problem = key.problem(value) if key is not None else f"unknown key {name!r}"
            if problem:
                raise FractureTuneError(problem, hint=f"allowed: {key.describe()}" if key else None)


def _coerced(key: Any, value: Any) -> Any:
    problem = key.problem(value)
    if problem:
        raise FractureTuneError(problem, hint=f"allowed: {key.describe()}")
    return key.coerce(value)
