"""A configured image source (``dataset.path``) expands ``~`` and ``$VARIABLES`` or names what is unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.data.sources import expand_source_path
from fracture_tune.errors import FractureTuneError


def test_a_set_variable_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRACATLAS_DIR", str(tmp_path))
    assert expand_source_path("$FRACATLAS_DIR") == tmp_path
    assert expand_source_path("${FRACATLAS_DIR}/images") == tmp_path / "images"


def test_an_unset_variable_is_named_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRACATLAS_DIR", raising=False)
    with pytest.raises(FractureTuneError) as raised:
        expand_source_path("$FRACATLAS_DIR")
    assert "$FRACATLAS_DIR is not set" in raised.value.message
    assert raised.value.hint and "export FRACATLAS_DIR=" in raised.value.hint
