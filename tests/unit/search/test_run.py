"""The search call's own steps that run without Ray (the rest of search/run.py is driven end to end by
tests/integration/test_search_run.py, test_search_resume.py and the reliability tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import load_config
from fracture_tune.search.run import prepare_search_dataset


def test_preparing_a_folder_that_has_gone_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resumed search prepares its data before the pre-flight checks: the folder may be gone since.
    monkeypatch.chdir(tmp_path)
    config = load_config("quickstart", {"dataset.path": "xrays", "dataset.cache_root": str(tmp_path / "c")})
    with pytest.raises(FractureTuneError) as raised:
        prepare_search_dataset(config)
    assert raised.value.message == "dataset.path: 'xrays' does not exist"
    assert raised.value.hint and "--set dataset.path=synthetic" in raised.value.hint
