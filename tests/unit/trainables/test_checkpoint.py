"""Training checkpoints: a user notices if a resumed trial does not get back the exact state it saved, if
a wrong path or a foreign file gives a traceback instead of a message saying what to pass, or if numpy's
random stream continues differently after a resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from fracture_tune.errors import FractureTuneError
from fracture_tune.trainables import checkpoint
from fracture_tune.trainables.checkpoint import (
    CHECKPOINT_FILE,
    load_checkpoint,
    numpy_rng_state,
    restore_numpy_rng_state,
    save_checkpoint,
)


def _state() -> dict[str, Any]:
    return {
        "model": {"w": torch.arange(6.0).reshape(2, 3)},
        "epoch": 2,
        "history": [{"loss": 0.5}, {"loss": 0.4}],
    }


def test_saved_state_loads_back_equal_from_the_file_or_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "trial"
    folder.mkdir()
    written = save_checkpoint(folder, _state())
    nested = save_checkpoint(tmp_path / "deeper" / "state.pt", _state())

    assert written == folder / CHECKPOINT_FILE
    for source in (folder, written, nested):
        loaded = load_checkpoint(source)
        torch.testing.assert_close(loaded["model"]["w"], _state()["model"]["w"])
        assert loaded["history"] == _state()["history"] and loaded["epoch"] == 2
    assert sorted(p.name for p in folder.iterdir()) == [CHECKPOINT_FILE]


def test_missing_or_foreign_files_are_errors_that_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FractureTuneError, match="no training checkpoint"):
        load_checkpoint(tmp_path / "nowhere")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(FractureTuneError, match="not a fracture-tune training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"model": np.zeros(2), "epoch": 1}, tmp_path / "pickled.pt")
    with pytest.raises(FractureTuneError, match="cannot read"):
        load_checkpoint(tmp_path / "pickled.pt")


@pytest.fixture
def global_numpy_rng() -> Iterator[None]:
    before = np.random.get_state()
    yield
    np.random.set_state(before)


@pytest.mark.usefixtures("global_numpy_rng")
def test_numpy_random_stream_resumes_where_it_was_saved(tmp_path: Path) -> None:
    np.random.seed(123)
    np.random.normal()  # leaves a cached gaussian in the state
    saved = save_checkpoint(tmp_path, {"model": {}, "epoch": 0, "numpy": numpy_rng_state()})
    expected = (np.random.normal(size=3), np.random.randint(0, 1000, size=3))

    np.random.seed(999)
    restore_numpy_rng_state(load_checkpoint(saved)["numpy"])

    np.testing.assert_array_equal(np.random.normal(size=3), expected[0])
    np.testing.assert_array_equal(np.random.randint(0, 1000, size=3), expected[1])


def test_a_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_checkpoint(tmp_path, _state())

    def fails(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", fails)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, {"model": {}, "epoch": 9})

    assert load_checkpoint(tmp_path)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_FILE]
