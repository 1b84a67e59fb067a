"""A trial restarting in the same driver keeps every result line it reported, also those the run folder's
copy (synced at Tune's last snapshot) does not have yet; a new driver still fetches the run folder's copy."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs
import pytest

from fracture_tune.search.result_loggers import CsvResultLogger, JsonResultLogger


class _Trial:
    """What Tune's loggers read of a trial that has a checkpoint (so is restarting): its two folders."""

    def __init__(self, local: Path, remote: Path) -> None:
        self.config: dict = {}
        self.local_path = str(local)
        self.checkpoint = object()
        self.storage = SimpleNamespace(
            trial_fs_path=str(remote), storage_filesystem=pyarrow.fs.LocalFileSystem()
        )

    def init_local_path(self) -> None:
        Path(self.local_path).mkdir(exist_ok=True)


@pytest.mark.parametrize(
    ("logger_class", "file_name"), [(JsonResultLogger, "result.json"), (CsvResultLogger, "progress.csv")]
)
def test_a_restarted_trial_keeps_the_results_the_run_folder_has_not_synced(
    tmp_path: Path, logger_class: type, file_name: str
) -> None:
    local, remote = tmp_path / "driver", tmp_path / "run_folder"
    local.mkdir(), remote.mkdir()
    (local / file_name).write_text("epoch 1\nepoch 2\nepoch 3\n")
    (remote / file_name).write_text("epoch 1\nepoch 2\n")  # synced before epoch 3 was reported

    logger_class()._restore_from_remote(file_name, _Trial(local, remote))

    assert (local / file_name).read_text() == "epoch 1\nepoch 2\nepoch 3\n"


def test_a_new_driver_takes_the_run_folders_results(tmp_path: Path) -> None:
    local, remote = tmp_path / "driver", tmp_path / "run_folder"
    local.mkdir(), remote.mkdir()
    (remote / "result.json").write_text('{"epoch": 1}\n')

    JsonResultLogger().log_trial_start(_Trial(local, remote))

    assert (local / "result.json").read_text() == '{"epoch": 1}\n'
