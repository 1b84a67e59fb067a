"""A configured image source (``dataset.path``) expands ``~`` and ``$VARIABLES`` or names what is unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.data.sources import expand_source_path, missing_source_hint, scan_source
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


def test_a_missing_source_hint_says_where_it_looked_and_what_to_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    relative = missing_source_hint(Path("data/xrays"))
    assert relative.startswith(f"check the path: relative paths resolve from the current folder ({tmp_path})")
    assert f"{tmp_path / 'data'} has no 'xrays'" in relative
    assert "one sub-folder per class" in relative and "fracture-tune data synth DIR" in relative
    absolute = missing_source_hint(tmp_path / "xrays" / "Fractured")
    assert absolute.startswith(f"check the path: {tmp_path} has no 'xrays'.")
    with pytest.raises(FractureTuneError) as raised:
        scan_source("data/xrays")
    assert raised.value.message == "dataset source 'data/xrays' does not exist"
    assert raised.value.hint == relative
