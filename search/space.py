"""Search spaces in YAML → an Optuna define-by-run function for Ray's ``OptunaSearch``.

A parameter is ``float`` (``log: true`` for log-uniform), ``int`` or ``categorical``; ``when`` makes it
conditional on earlier parameters (e.g. conv widths only when ``model`` is ``tunable_cnn``), which a
define-by-run function expresses naturally: the parameter is simply not suggested otherwise.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fracture_tune.errors import FractureTuneError

# The seed notebook's Optuna space (docs/seed_recipes.md), usable as ``space: {preset: seed}``.
SEED_PRESET: dict[str, dict[str, Any]] = {
    "lr": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
    "dropout": {"type": "categorical", "choices": [0.3, 0.5, 0.7]},
    "c1": {"type": "categorical", "choices": [16, 32, 64]},
    "c2": {"type": "categorical", "choices": [32, 64, 128]},
    "c3": {"type": "categorical", "choices": [64, 128, 256]},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {"seed": SEED_PRESET}


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = Field(default=None, gt=0)
    choices: list[Any] | None = None
    when: dict[str, list[Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _well_formed(self) -> ParamSpec:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be < high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log-scale parameter needs low > 0 (got {self.low})")
        if self.log and self.step is not None:
            raise ValueError("'step' and 'log' cannot be combined (Optuna rejects it)")
        return self

    def contains(self, value: Any) -> bool:
        if self.type == "categorical":
            return value in (self.choices or [])
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return float(self.low or 0) <= float(value) <= float(self.high or 0)


class SpaceConfig(BaseModel):
    """``preset`` (optional) gives base parameters; ``params`` adds or replaces them; ``drop`` removes."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["seed"] | None = None
    params: dict[str, ParamSpec] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _conditions_refer_to_earlier_params(self) -> SpaceConfig:
        seen: set[str] = set()
        for name, spec in self.resolved_params().items():
            for parent in spec.when:
                if parent not in seen:
                    raise ValueError(
                        f"params.{name}.when refers to {parent!r}, which is not an earlier parameter"
                    )
            seen.add(name)
        return self

    def resolved_params(self) -> dict[str, ParamSpec]:
        """Parameters in suggestion order: preset first, then the YAML's own (replacing same names)."""
        params: dict[str, ParamSpec] = {}
        if self.preset:
            params.update({name: ParamSpec(**spec) for name, spec in PRESETS[self.preset].items()})
        params.update(self.params)
        for name in self.drop:
            params.pop(name, None)
        return _parents_first(params)

    def check_points(self, points: list[dict[str, Any]]) -> None:
        """Warm-start points must name known parameters with in-range values."""
        params = self.resolved_params()
        for index, point in enumerate(points):
            for name, value in point.items():
                where = f"searcher.points_to_evaluate[{index}].{name}"
                if name not in params:
                    raise FractureTuneError(
                        f"{where}: not a search-space parameter", hint=f"parameters: {', '.join(params)}"
                    )
                if not params[name].contains(value):
                    raise FractureTuneError(f"{where}: {value!r} is outside the parameter's range or choices")


def _parents_first(params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
    """Stable order in which every parameter comes after the ones its ``when`` refers to."""
    ordered: dict[str, ParamSpec] = {}
    pending = dict(params)
    while pending:
        ready = [name for name, spec in pending.items() if all(p in ordered for p in spec.when)]
        if not ready:  # unknown or circular parents: keep order, the validator names the culprit
            ordered.update(pending)
            break
        for name in ready:
            ordered[name] = pending.pop(name)
    return ordered


class DefineByRunSpace:
    """The callable handed to ``OptunaSearch(space=...)``.

    A plain class (not a closure) because Ray pickles the searcher, space included, into the experiment
    directory for resume.
    """

    def __init__(self, params: dict[str, ParamSpec]) -> None:
        self.params = {name: spec.model_dump() for name, spec in params.items()}

    def __call__(self, trial: Any) -> None:
        sampled: dict[str, Any] = {}
        for name, raw in self.params.items():
            spec = ParamSpec(**raw)
            if any(sampled.get(parent) not in allowed for parent, allowed in spec.when.items()):
                continue
            sampled[name] = suggest(trial, name, spec)

    def names(self) -> list[str]:
        return list(self.params)


def suggest(trial: Any, name: str, spec: ParamSpec) -> Any:
    if spec.type == "categorical":
        return trial.suggest_categorical(name, spec.choices)
    low, high = float(spec.low or 0), float(spec.high or 0)
    if spec.type == "int":
        return trial.suggest_int(name, int(low), int(high), step=int(spec.step or 1), log=spec.log)
    return trial.suggest_float(name, low, high, step=spec.step, log=spec.log)


def space_summary(params: dict[str, ParamSpec]) -> dict[str, str]:
    """One readable line per parameter, for the MLflow parent run and ``search show``."""
    summary: dict[str, str] = {}
    for name, spec in params.items():
        if spec.type == "categorical":
            text = f"choice{spec.choices}"
        else:
            text = f"{'log-' if spec.log else ''}{spec.type}[{spec.low}, {spec.high}]"
        if spec.when:
            text += f" when {spec.when}"
        summary[name] = text
    return summary
