"""The model registry: every classifier a search can pick, by name.

A model factory takes its hyperparameters as keyword arguments (what a search space samples) plus
``input_size``, which the engine always passes: models that flatten a fixed-size feature map (the seed's
CNNs) need it; the others ignore it. Input is [B, 1, S, S] normalised grayscale, output logits [B, 2].
Each model's parameters, types, defaults and bounds live in the key table (``engine_keys.MODEL_KEYS``):
``register_model`` refuses a factory whose keyword arguments differ from its table entry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables.engine_keys import INPUT_MULTIPLE, MODEL_KEYS, defaults, input_size_problem

ModelFactory = Callable[..., nn.Module]
_REGISTRY: dict[str, ModelFactory] = {}
NUM_CLASSES = 2


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make ``factory`` buildable as ``build_model(name, ...)``.

    The factory's keyword-only parameters (besides ``input_size``) must be exactly the model's entry in
    ``engine_keys.MODEL_KEYS``, which holds their types, defaults and bounds.
    """

    def decorate(factory: ModelFactory) -> ModelFactory:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        if name not in MODEL_KEYS:
            raise ValueError(f"model {name!r} has no entry in trainables/engine_keys.py MODEL_KEYS")
        taken = {
            param.name
            for param in inspect.signature(factory).parameters.values()
            if param.name != "input_size" and param.kind is inspect.Parameter.KEYWORD_ONLY
        }
        if taken != set(MODEL_KEYS[name]):
            raise ValueError(
                f"model {name!r} takes {sorted(taken)} but MODEL_KEYS lists {sorted(MODEL_KEYS[name])}"
            )
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def _factory(name: str) -> ModelFactory:
    if name not in _REGISTRY:
        raise FractureTuneError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())}",
            hint="set `model` to one of the registered names",
        )
    return _REGISTRY[name]


def model_params(name: str) -> dict[str, Any]:
    """The hyperparameters model ``name`` accepts, with their defaults (``input_size`` excluded)."""
    _factory(name)
    return defaults(MODEL_KEYS[name])


def build_model(name: str, *, input_size: int = 128, **kwargs: Any) -> nn.Module:
    """Build model ``name``: table defaults for what ``kwargs`` leaves out; unknown or bad values rejected."""
    factory = _factory(name)
    keys = MODEL_KEYS[name]
    unknown = sorted(set(kwargs) - set(keys))
    if unknown:
        raise FractureTuneError(
            f"model {name!r} does not accept {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(keys) or '(no parameters)'}",
            hint="remove the key or pick a model that has it",
        )
    values = {**defaults(keys), **kwargs}
    for key_name, value in values.items():
        problem = keys[key_name].problem(value)
        if problem:
            allowed = keys[key_name].describe()
            raise FractureTuneError(f"model {name!r}: {problem}", hint=f"allowed: {allowed}")
    problem = input_size_problem(name, input_size)
    if problem:
        raise FractureTuneError(
            problem, hint="use a multiple of 8 (e.g. 64, 128, 224), or deep_cnn / resnet18 (globally pooled)"
        )
    return factory(input_size=input_size, **{key: keys[key].coerce(value) for key, value in values.items()})


def _flat_features(channels: int, input_size: int) -> int:
    """Features after three 2x2 max-pools, as the seed's flatten layer computes them."""
    return channels * (input_size // INPUT_MULTIPLE) ** 2


class SeedCNN(nn.Module):
    """The seed's three-conv CNN: base (no norm, no dropout) or enhanced (batch norm + dropout)."""

    def __init__(self, widths: tuple[int, int, int], input_size: int, batch_norm: bool, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 1
        for width in widths:
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_channels = width
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(_flat_features(widths[-1], input_size), 128)]
        if batch_norm:
            head.append(nn.BatchNorm1d(128))
        head.append(nn.ReLU(inplace=True))
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(128, NUM_CLASSES))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("base_cnn")
def base_cnn(*, input_size: int = 128) -> nn.Module:
    """The seed's base CNN: conv 16/32/64, flatten 64·(S/8)² → 128 → 2."""
    return SeedCNN((16, 32, 64), input_size, batch_norm=False, dropout=0.0)


@register_model("enhanced_cnn")
def enhanced_cnn(*, input_size: int = 128) -> nn.Module:
    """The seed's enhanced CNN: the base CNN with batch norm and dropout 0.5 before the last layer."""
    return SeedCNN((16, 32, 64), input_size, batch_norm=True, dropout=0.5)


@register_model("tunable_cnn")
def tunable_cnn(*, c1: int, c2: int, c3: int, dropout: float, input_size: int = 128) -> nn.Module:
    """The seed's tuned CNN: the enhanced CNN with conv widths and dropout as parameters.

    The defaults equal ``enhanced_cnn``; the seed's Optuna winner was c1=32, c2=128, c3=256, dropout=0.7.
    """
    return SeedCNN((c1, c2, c3), input_size, batch_norm=True, dropout=dropout)


class DeepCNN(nn.Module):
    """Stacked conv blocks (width doubling every block, capped at 8x) with global average pooling."""

    def __init__(self, depth: int, width: int, kernel_size: int, batch_norm: bool, dropout: float):
        super().__init__()  # bounds (depth >= 1, odd kernel_size, ...) are checked by build_model
        layers: list[nn.Module] = []
        in_channels = 1
        for block in range(depth):
            out_channels = width * 2 ** min(block, 3)
            layers.append(
                nn.Conv2d(
                    in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not batch_norm
                )
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            # ceil_mode keeps a 1x1 map 1x1, so deep stacks work at any input size.
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


@register_model("deep_cnn")
def deep_cnn(
    *, depth: int, width: int, kernel_size: int, batch_norm: bool, dropout: float, input_size: int = 128
) -> nn.Module:
    """A deeper CNN with global average pooling (any input size)."""
    return DeepCNN(depth, width, kernel_size, batch_norm, dropout)


@register_model("resnet18")
def resnet18(*, pretrained_path: str, input_size: int = 128) -> nn.Module:
    """torchvision ResNet-18 with a 1-channel stem and a 2-class head, randomly initialised.

    ``pretrained_path``: a local state_dict file (never downloaded). A 3-channel stem is summed to one
    channel; a head of another size (e.g. ImageNet's 1000 classes) is left at its random init.
    """
    from torchvision.models import resnet18 as torchvision_resnet18

    model = torchvision_resnet18(weights=None, num_classes=NUM_CLASSES)
    model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    if pretrained_path:
        _load_pretrained(model, Path(pretrained_path))
    return model


def _load_pretrained(model: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FractureTuneError(
            f"pretrained_path {str(path)!r} is not a file",
            hint="point it at a local state_dict saved with torch.save",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling failure is the file's fault
        raise FractureTuneError(
            f"cannot load state_dict from {str(path)!r}: {error}",
            hint="save it with torch.save(model.state_dict(), path)",
        ) from error
    if not isinstance(state, dict):
        raise FractureTuneError(f"{str(path)!r} does not hold a state_dict (got {type(state).__name__})")
    stem = state.get("conv1.weight")
    if isinstance(stem, torch.Tensor) and stem.shape[1] == 3:
        state["conv1.weight"] = stem.sum(dim=1, keepdim=True)
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing = set(own) - set(compatible)
    if missing - {"fc.weight", "fc.bias"}:
        raise FractureTuneError(
            f"{str(path)!r} is not a ResNet-18 state_dict: missing or mismatched {sorted(missing)[:5]}",
            hint="use weights saved from torchvision.models.resnet18",
        )
    model.load_state_dict(compatible, strict=False)


@register_model("tiny_cnn")
def tiny_cnn(*, width: int, input_size: int = 128) -> nn.Module:
    """A few hundred parameters: for tests and smoke runs only."""
    return nn.Sequential(
        nn.Conv2d(1, width, kernel_size=3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, NUM_CLASSES),
    )
