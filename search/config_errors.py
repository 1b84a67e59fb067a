"""Turn pydantic's validation errors into one message naming the dotted key, plus a hint."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from fracture_tune.errors import did_you_mean


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config class that holds the last key of ``path`` (to list its valid keys)."""
    current: type[BaseModel] | None = model
    for part in path:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return current


def format_validation_error(
    error: ValidationError, model: type[BaseModel], source: str
) -> tuple[str, str | None]:
    first = error.errors()[0]
    location = tuple(first["loc"])
    dotted = ".".join(str(part) for part in location) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    hint: str | None = None
    if first["type"] == "extra_forbidden":
        parent = _model_at(model, location[:-1])
        valid = sorted(parent.model_fields) if parent else []
        guess = did_you_mean(str(location[-1]), valid)
        message = f"unknown key {dotted!r}"
        if guess:
            hint = f"did you mean {guess!r}?"
        elif valid:
            hint = f"valid keys here: {', '.join(valid)}"
    elif location and "input" in first and not isinstance(first["input"], dict | list):
        message = f"{message} (got {first['input']!r})"
    more = len(error.errors()) - 1
    suffix = f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {dotted}: {message}{suffix}", hint
