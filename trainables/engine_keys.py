"""The training engine's key table: every flat key a trial's config may hold, with its type, default,
bounds and choices, and the metrics the engine reports.

One source of truth, standard library only: ``TrainConfig`` builds and validates a trial's config from it,
the model registry takes each model's parameters and defaults from it, and the search checks a whole search
space against it before Ray starts (``fracture_tune.search.trial_values``) without importing torch.
Add an engine key or a model parameter here first (docs/architecture.md has the recipe).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fracture_tune.errors import FractureTuneError, did_you_mean


@dataclass(frozen=True)
class EngineKey:
    """One key: its Python type, default, inclusive bounds (``low``/``high``; ``*_open`` excludes the bound),
    allowed ``choices``, and what a 0 means where 0 is special."""

    name: str
    kind: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] | None = None
    odd: bool = False

    def describe(self) -> str:
        """``lr: float > 0``, ``optimizer: one of adam, adamw, sgd``: for hints."""
        if self.choices is not None:
            return f"{self.name}: one of {', '.join(map(str, self.choices))}"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {_number(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {_number(self.high)}")
        if self.odd:
            parts.append("odd")
        return f"{self.name}: {self.kind.__name__}{' ' + ' and '.join(parts) if parts else ''}"

    def coerce(self, value: Any) -> Any:
        """``value`` as this key's type (a sampled numpy scalar, 32.0 for an int, "true" for a bool).

        Raises ValueError saying what was expected.
        """
        kind = self.kind
        if kind is bool:
            if isinstance(value, str) and value.lower() in _BOOL_WORDS:
                return _BOOL_WORDS[value.lower()]
            if isinstance(value, bool) or (isinstance(value, int | float) and value in (0, 1)):
                return bool(value)
            raise ValueError(f"{self.name}={value!r} is not a boolean (true or false)")
        if kind is str:
            if isinstance(value, str):
                return value
            raise ValueError(f"{self.name}={value!r} is not a string")
        if isinstance(value, bool) or not _is_number(value):
            raise ValueError(f"{self.name}={value!r} is not a number ({kind.__name__})")
        number = float(value)
        if kind is int:
            if not number.is_integer():
                raise ValueError(f"{self.name}={value!r} is not a whole number")
            return int(number)
        return number

    def problem(self, value: Any) -> str | None:
        """Why ``value`` would fail a trial, or None. ``value`` need not be coerced yet."""
        try:
            value = self.coerce(value)
        except ValueError as error:
            return str(error)
        if self.choices is not None and value not in self.choices:
            guess = did_you_mean(str(value), map(str, self.choices))
            return f"{self.name}={value!r} is not one of {', '.join(map(str, self.choices))}" + (
                f" (did you mean {guess!r}?)" if guess else ""
            )
        if self.kind in (int, float):
            if not math.isfinite(value):
                return f"{self.name}={value!r} must be finite"
            if not self.within(value):
                return f"{self.name}={value!r} is out of range ({self.describe()})"
            if self.odd and int(value) % 2 == 0:
                return f"{self.name}={value!r} must be odd"
        return None

    def within(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, str)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _table(*keys: EngineKey) -> dict[str, EngineKey]:
    return {key.name: key for key in keys}


# Each model's constructor parameters (the registry in trainables/models.py builds models with these).
MODEL_KEYS: dict[str, dict[str, EngineKey]] = {
    "base_cnn": {},
    "enhanced_cnn": {},
    "tunable_cnn": _table(
        EngineKey("c1", int, 16, "first conv block's channels", low=1),
        EngineKey("c2", int, 32, "second conv block's channels", low=1),
        EngineKey("c3", int, 64, "third conv block's channels", low=1),
        EngineKey("dropout", float, 0.5, "dropout before the last layer", low=0, high=1),
    ),
    "deep_cnn": _table(
        EngineKey("depth", int, 4, "conv blocks (width doubles per block, up to 8x)", low=1),
        EngineKey("width", int, 32, "first block's channels", low=1),
        EngineKey("kernel_size", int, 3, "convolution kernel size", low=1, odd=True),
        EngineKey("batch_norm", bool, True, "batch norm after each conv"),
        EngineKey("dropout", float, 0.3, "dropout before the last layer", low=0, high=1),
    ),
    "resnet18": _table(
        EngineKey(
            "pretrained_path", str, "", "absolute path of a local ResNet-18 state_dict ('' = from scratch)"
        ),
    ),
    "tiny_cnn": _table(EngineKey("width", int, 4, "channels (a model for tests and smoke runs)", low=1)),
}

# Models that flatten the feature map after three 2x2 max-pools: the input side must be a multiple of 8.
FLATTENING_MODELS = frozenset({"base_cnn", "enhanced_cnn", "tunable_cnn"})
INPUT_MULTIPLE = 8

# Keys every model takes (TrainConfig's fields). Defaults are the seed notebook's (Adam, lr 1e-3, batch 32,
# 30 epochs, cross entropy, no augmentation).
ENGINE_KEYS: dict[str, EngineKey] = _table(
    EngineKey("model", str, "base_cnn", "registered model name", choices=tuple(MODEL_KEYS)),
    EngineKey("epochs", int, 30, "epochs to train", low=1),
    EngineKey("batch_size", int, 32, "images per step", low=1),
    EngineKey("lr", float, 1e-3, "peak learning rate", low=0, low_open=True),
    EngineKey("optimizer", str, "adam", "optimiser", choices=("adam", "adamw", "sgd")),
    EngineKey("momentum", float, 0.9, "SGD momentum (SGD only)", low=0),
    EngineKey("weight_decay", float, 0.0, "weight decay", low=0),
    EngineKey(
        "schedule",
        str,
        "constant",
        "learning-rate schedule",
        choices=("constant", "cosine", "onecycle", "step"),
    ),
    EngineKey("warmup_epochs", float, 0.0, "linear warm-up epochs", low=0),
    EngineKey("label_smoothing", float, 0.0, "cross-entropy label smoothing", low=0, high=1, high_open=True),
    EngineKey("class_weighting", str, "none", "loss weights per class", choices=("none", "balanced")),
    EngineKey("grad_clip", float, 0.0, "max gradient norm (0 = off)", low=0),
    EngineKey("aug_strength", float, 0.0, "multiplier of the seed notebook's augmentation (0 = none)", low=0),
    EngineKey("aug_factor", int, 1, "epoch multiplier: each train image seen this often per epoch", low=1),
    EngineKey("input_size", int, 0, "image side the model sees (0 = the cache's size)", low=0),
    EngineKey("seed", int, 0, "training seed"),
    EngineKey("train_limit", int, 0, "seeded slice of the train split (0 = all)", low=0),
    EngineKey("val_limit", int, 0, "seeded slice of the validation split (0 = all)", low=0),
    EngineKey("device", str, "auto", "where to train", choices=("auto", "cpu", "cuda")),
    EngineKey("num_threads", int, 0, "CPU threads (0 = the CPUs this process may use)", low=0),
    EngineKey("channels_last", bool, True, "channels-last memory layout"),
    EngineKey("amp", bool, True, "bf16 autocast on CUDA (ignored on CPU)"),
    EngineKey("compile", bool, False, "torch.compile the model"),
    # reduce-overhead adds CUDA graphs (one launch per graph instead of one per kernel).
    EngineKey(
        "compile_mode",
        str,
        "default",
        "torch.compile mode",
        choices=("default", "reduce-overhead", "max-autotune-no-cudagraphs"),
    ),
    EngineKey("cudnn_benchmark", bool, True, "CUDA: cuDNN times its convolution algorithms per batch shape"),
)

# What the engine reports after every epoch (a search's ``metric`` is one); lower is better for losses.
REPORTED_METRICS: frozenset[str] = frozenset(
    {
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "val_balanced_accuracy",
        "val_auroc",
        "val_sensitivity",
        "val_specificity",
        "val_f1",
    }
)
LOWER_IS_BETTER: frozenset[str] = frozenset({"train_loss", "val_loss"})


def model_keys(model: str) -> dict[str, EngineKey]:
    """The parameters of ``model``; an unknown name raises ``FractureTuneError``."""
    if model not in MODEL_KEYS:
        guess = did_you_mean(model, MODEL_KEYS)
        raise FractureTuneError(
            f"unknown model {model!r}{f' (did you mean {guess!r}?)' if guess else ''}",
            hint=f"registered models: {', '.join(sorted(MODEL_KEYS))}",
        )
    return MODEL_KEYS[model]


def keys_for(model: str) -> dict[str, EngineKey]:
    """Every key a trial of ``model`` accepts: the common ones and the model's own."""
    return {**ENGINE_KEYS, **model_keys(model)}


def all_key_names() -> frozenset[str]:
    """Every key some model accepts."""
    return frozenset(ENGINE_KEYS).union(*(keys.keys() for keys in MODEL_KEYS.values()))


def input_size_problem(model: str, input_size: int) -> str | None:
    """Why ``model`` cannot take ``input_size`` x ``input_size`` images, or None."""
    if model in FLATTENING_MODELS and (input_size < INPUT_MULTIPLE or input_size % INPUT_MULTIPLE):
        return (
            f"input_size {input_size} does not suit model {model!r}: it flattens after three 2x2 pools, so "
            f"the side must be a multiple of {INPUT_MULTIPLE}"
        )
    return None


def unknown_key_hint(name: str, accepted: Iterable[str]) -> str:
    guess = did_you_mean(name, accepted)
    return f"did you mean {guess!r}?" if guess else f"valid keys: {', '.join(sorted(accepted))}"


def defaults(keys: Mapping[str, EngineKey]) -> dict[str, Any]:
    return {name: key.default for name, key in keys.items()}
