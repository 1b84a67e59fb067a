"""Every value a trial of the search could be given, checked against the engine's key table before Ray starts.

A value the engine would reject fails here, once, naming its dotted key — not in every trial of the search
after Ray has started: the fixed values of ``training``, and the ranges and choices of ``space.params``, for
every model the search can pick. The table is ``fracture_tune.trainables.engine_keys`` (torch-free).
"""

from __future__ import annotations

from typing import Any

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.space import ParamSpec
from fracture_tune.trainables.engine_keys import (
    ENGINE_KEYS,
    FLATTENING_MODELS,
    INPUT_MULTIPLE,
    EngineKey,
    all_key_names,
    keys_for,
    model_keys,
    unknown_key_hint,
)


def check_trial_values(training: dict[str, Any], params: dict[str, ParamSpec], image_size: int) -> None:
    """Raise ``FractureTuneError`` for the first fixed value or space parameter a trial would reject.

    ``image_size`` is the prepared images' side, which a trial trains at when ``input_size`` is 0.
    """
    models = _models_in_search(training, params)
    known = all_key_names()
    for section, names in (("training", list(training)), ("space.params", list(params))):
        for name in names:
            if name not in known:
                raise FractureTuneError(
                    f"{section}.{name}: the training engine has no key {name!r}",
                    hint=unknown_key_hint(name, known),
                )
    for model in models:
        accepted = keys_for(model)
        for name, value in training.items():
            _require_key(model, accepted, "training", name)
            problem = accepted[name].problem(value)
            if problem:
                raise FractureTuneError(
                    f"training.{name}: {problem}", hint=f"allowed: {accepted[name].describe()}"
                )
        for name, spec in params.items():
            if model in _models_of(spec, models):
                _require_key(model, accepted, "space.params", name)
                _check_spec(f"space.params.{name}", accepted[name], spec)
        if model in FLATTENING_MODELS:
            _check_input_sizes(model, training, params, models, image_size)


def _models_in_search(training: dict[str, Any], params: dict[str, ParamSpec]) -> list[str]:
    key = ENGINE_KEYS["model"]
    spec = params.get("model")
    if spec is None:
        value = training.get("model", key.default)
        problem = key.problem(value)
        if problem:
            raise FractureTuneError(f"training.model: {problem}", hint=f"allowed: {key.describe()}")
        return [str(value)]
    if spec.type != "categorical":
        raise FractureTuneError("space.params.model: a model is chosen by name: use type: categorical")
    _check_spec("space.params.model", key, spec)
    return [str(choice) for choice in spec.choices or []]


def _models_of(spec: ParamSpec, models: list[str]) -> list[str]:
    """The models a parameter is sampled for (all of them unless its ``when`` names some)."""
    allowed = spec.when.get("model")
    return [model for model in models if allowed is None or model in [str(choice) for choice in allowed]]


def _require_key(model: str, accepted: dict[str, EngineKey], section: str, name: str) -> None:
    if name not in accepted:
        own = model_keys(model)
        raise FractureTuneError(
            f"{section}.{name}: model {model!r} takes no parameter {name!r}",
            hint=f"make it conditional: when: {{model: [...]}}; {model} takes: "
            f"{', '.join(sorted(own)) or 'no model parameters'}",
        )


def _check_spec(where: str, key: EngineKey, spec: ParamSpec) -> None:
    """A space parameter's choices, or its whole range, within what the engine accepts for ``key``."""
    allowed = f"the engine accepts {key.describe()}"
    if spec.type == "categorical":
        for choice in spec.choices or []:
            problem = key.problem(choice)
            if problem:
                raise FractureTuneError(f"{where}.choices: {problem}", hint=allowed)
        return
    if key.kind in (bool, str):
        raise FractureTuneError(
            f"{where}: {key.name} is a {key.kind.__name__}, not a number range",
            hint=f"use type: categorical with choices; {allowed}",
        )
    if key.kind is int and spec.type == "float":
        raise FractureTuneError(
            f"{where}: {key.name} takes whole numbers", hint="use type: int (or categorical)"
        )
    for end, value in (("low", spec.low), ("high", spec.high)):
        problem = key.problem(value)
        if problem:
            raise FractureTuneError(f"{where}.{end}: the range reaches {value!r}: {problem}", hint=allowed)
    if key.odd and (int(spec.low or 0) % 2 == 0 or int(spec.step or 1) % 2):
        raise FractureTuneError(
            f"{where}: {key.name} must be odd, but this range samples even values",
            hint="start at an odd low with step: 2, or list odd choices",
        )


def _check_input_sizes(
    model: str, training: dict[str, Any], params: dict[str, ParamSpec], models: list[str], image_size: int
) -> None:
    """Models that flatten after three 2x2 pools need a side that is a multiple of 8 in every trial."""
    hint = "use a multiple of 8 (e.g. 64, 128, 224) or a globally pooled model (deep_cnn, resnet18)"
    spec = params.get("input_size")
    if spec is not None and model in _models_of(spec, models):
        if spec.type == "categorical":
            sizes = [("space.params.input_size.choices", int(choice)) for choice in spec.choices or []]
        else:
            step = int(spec.step or 1)
            if int(spec.low or 0) % INPUT_MULTIPLE or step % INPUT_MULTIPLE:
                raise FractureTuneError(
                    f"space.params.input_size: model {model!r} needs a multiple of {INPUT_MULTIPLE}, "
                    f"but this range samples others (low {spec.low:g}, step {step})",
                    hint=f"start at a multiple of {INPUT_MULTIPLE} with step: {INPUT_MULTIPLE}; {hint}",
                )
            return
    else:
        sizes = [("training.input_size", int(training.get("input_size", 0)))]
    for where, size in sizes:
        side, source = (size, where) if size else (image_size, "dataset.image_size (input_size 0)")
        if side % INPUT_MULTIPLE:
            raise FractureTuneError(
                f"{source}: model {model!r} flattens after three 2x2 pools and needs a multiple of "
                f"{INPUT_MULTIPLE}, got {side}",
                hint=hint,
            )
