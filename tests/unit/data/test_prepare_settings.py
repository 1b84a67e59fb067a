"""`data prepare --config`: a search config's dataset section as prepare's settings, with the defaults a
search uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.data.prepare_settings import (
    DATASET_KEYS,
    PrepareSettings,
    config_path,
    settings_from_config,
    shipped_configs,
)
from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import DatasetConfig, load_config


def test_defaults_are_the_search_configs_defaults() -> None:
    """A prepare without flags makes the cache a search without a dataset section reuses."""
    defaults, search = PrepareSettings(), DatasetConfig()
    assert {key: getattr(defaults, name) for key, (name, _kind) in DATASET_KEYS.items()} == {
        key: getattr(search, key) for key in DATASET_KEYS
    }


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_a_shipped_config_gives_the_settings_its_search_prepares_with(name: str) -> None:
    settings = settings_from_config(name)
    dataset = load_config(name, {"dataset.path": "/images"}).dataset
    assert (settings.image_size, settings.val_fraction, settings.test_fraction, settings.seed) == (
        dataset.image_size,
        dataset.val_fraction,
        dataset.test_fraction,
        dataset.split_seed,
    )
    assert settings.cache_root == dataset.cache_root


def test_a_yaml_without_a_dataset_section_keeps_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("budget:\n  num_trials: 2\n")
    assert settings_from_config(config) == PrepareSettings()
    config.write_text("dataset:\n  test_fraction: 0\n")  # YAML's 0 is an int: still a fraction
    assert settings_from_config(config) == PrepareSettings(test_fraction=0.0)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("image_size: big", "dataset.image_size: expected int, got 'big'"),
        ("split_seed: true", "dataset.split_seed: expected int, got True"),
        ("val_fraction: [0.1]", "dataset.val_fraction: expected a number, got [0.1]"),
    ],
)
def test_a_wrong_type_names_the_key(tmp_path: Path, section: str, message: str) -> None:
    config = tmp_path / "search.yaml"
    config.write_text(f"dataset:\n  {section}\n")
    with pytest.raises(FractureTuneError, match="^" + str(config)) as raised:
        settings_from_config(config)
    assert message in raised.value.message


def test_an_unknown_config_lists_the_shipped_ones() -> None:
    assert config_path("fracatlas-laptop") == shipped_configs()["fracatlas-laptop"]
    with pytest.raises(FractureTuneError, match="config file not found: nope") as raised:
        settings_from_config("nope")
    assert "fracatlas-laptop" in (raised.value.hint or "")
