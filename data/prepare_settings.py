"""The settings that decide which cache a prepare writes (image size, split fractions and seed, cache root),
their defaults, and how to read them from an experiment YAML's ``dataset:`` section.

A search reuses a prepared cache only when its ``dataset`` section asks for the same settings (the cache key
hashes them, ``data/cache.py``), so ``data prepare SRC --config NAME`` takes them from that search's config.
This floor sits below ``search/``: it reads the ``dataset:`` section alone and checks the types of the keys it
takes; the search validates the whole file when it loads it (``search/config.py``, which finds config files
with ``config_path`` from here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fracture_tune.errors import FractureTuneError

# configs/ at the repository root, installed as package data beside the code (fracture_tune/configs).
SHIPPED_CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_CACHE_ROOT = ".fracture-tune/datasets"


@dataclass(frozen=True)
class PrepareSettings:
    image_size: int = 128
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    cache_root: str = DEFAULT_CACHE_ROOT

    def as_dataset_section(self) -> str:
        """The ``dataset:`` keys a search config sets to reuse this cache (``cache_root`` when not the
        default)."""
        values = {key: getattr(self, name) for key, (name, _kind) in DATASET_KEYS.items()}
        if self.cache_root == DEFAULT_CACHE_ROOT:
            del values["cache_root"]
        return ", ".join(f"{key}: {value}" for key, value in values.items())


# dataset.<key> of an experiment YAML → (the PrepareSettings field it sets, the type its value must have).
DATASET_KEYS: dict[str, tuple[str, type]] = {
    "image_size": ("image_size", int),
    "val_fraction": ("val_fraction", float),
    "test_fraction": ("test_fraction", float),
    "split_seed": ("seed", int),
    "cache_root": ("cache_root", str),
}


def shipped_configs() -> dict[str, Path]:
    """The example configs installed with the package, by name (``quickstart``, ``fracatlas``, …)."""
    return {path.stem: path for path in sorted(SHIPPED_CONFIG_DIR.glob("*.yaml"))}


def config_path(path_or_name: str | os.PathLike[str]) -> Path:
    """An existing YAML file, else the shipped config of that name (``quickstart`` or ``quickstart.yaml``)."""
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name.removesuffix(".yaml").removesuffix(".yml")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    raise FractureTuneError(
        f"config file not found: {path}",
        hint=f"give a YAML path, or a shipped config's name: {', '.join(shipped)}",
    )


def settings_from_config(path_or_name: str | os.PathLike[str]) -> PrepareSettings:
    """The prepare settings of a config's ``dataset:`` section; keys it leaves out keep their defaults."""
    import yaml

    config_file = config_path(path_or_name)
    try:
        raw = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise FractureTuneError(f"{config_file} is not valid YAML: {error}") from error
    section = raw.get("dataset") if isinstance(raw, dict) else None
    if section is None:
        return PrepareSettings()
    if not isinstance(section, dict):
        raise FractureTuneError(f"{config_file}: dataset: must be a mapping of keys (image_size, ...)")
    values = {
        name: _typed(config_file, key, section[key], kind)
        for key, (name, kind) in DATASET_KEYS.items()
        if key in section
    }
    return PrepareSettings(**values)


def _typed(config_file: Path, key: str, value: Any, kind: type) -> Any:
    accepted = (int, float) if kind is float else (kind,)  # YAML reads 0 as an int: a fraction too
    if isinstance(value, bool) or not isinstance(value, accepted):
        raise FractureTuneError(
            f"{config_file}: dataset.{key}: expected {'a number' if kind is float else kind.__name__}, "
            f"got {value!r}"
        )
    return kind(value)
