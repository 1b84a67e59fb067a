"""Pre-flight checks before Ray starts: weights files named by ``pretrained_path`` wherever a config puts
them, and ``--address`` (a malformed one names the forms Ray accepts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_runs import REPO_ROOT

from fracture_tune.errors import FractureTuneError
from fracture_tune.search.config import ExperimentConfig, load_config
from fracture_tune.search.preflight import check_dataset_path, check_pretrained_files, check_ray_address

REPO = REPO_ROOT


def _conditional(weights: str) -> ExperimentConfig:
    """configs/fracatlas.yaml with resnet18 trials starting from ``weights`` (docs/configuration.md: A
    pretrained start)."""
    spec = "{type: categorical, choices: [" + weights + "], when: {model: [resnet18]}}"
    return load_config(REPO / "configs" / "fracatlas.yaml", [f"space.params.pretrained_path={spec}"])


def test_a_missing_file_in_a_conditional_space_choice_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "resnet18.pth"
    with pytest.raises(FractureTuneError, match=r"space\.params\.pretrained_path=.*no such file"):
        check_pretrained_files(_conditional(str(missing)), address=None)
    missing.write_bytes(b"weights")
    check_pretrained_files(_conditional(str(missing)), address=None)


def test_a_cluster_search_checks_the_path_form_but_not_the_local_disk() -> None:
    """With --address the file lives on the cluster's nodes, maybe not here; it must still be absolute."""
    remote = "127.0.0.1:6379"
    check_pretrained_files(_conditional("/data/weights/resnet18.pth"), remote)
    with pytest.raises(FractureTuneError, match="is a relative path"):
        check_pretrained_files(_conditional("weights/resnet18.pth"), remote)


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:port", "ray://head"])
def test_an_address_without_a_port_is_rejected(address: str) -> None:
    with pytest.raises(FractureTuneError, match="is not host:port"):
        check_ray_address(address)


def test_auto_and_no_address_are_left_to_ray() -> None:
    check_ray_address(None)
    check_ray_address("auto")


def test_a_listening_port_passes() -> None:
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        host, port = server.getsockname()
        check_ray_address(f"{host}:{port}")
        check_ray_address(f"ray://{host}:{port}")


def test_tensorboard_without_tensorboardx_fails_before_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from fracture_tune.search.config import load_config
    from fracture_tune.search.preflight import check_tensorboard

    config = load_config("quickstart", {"tracking.tensorboard": True})
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == "tensorboardX" else real_find_spec(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(FractureTuneError, match="needs the tensorboardX package") as raised:
        check_tensorboard(config)
    assert "fracture-tune[tensorboard]" in (raised.value.hint or "")
    check_tensorboard(load_config("quickstart"))  # off by default: nothing to check


def test_dashboard_is_for_a_local_ray_only() -> None:
    from fracture_tune.search.run import make_options

    with pytest.raises(FractureTuneError, match="--dashboard starts the dashboard of a local Ray"):
        make_options("s", address="127.0.0.1:6379", dashboard=True)
    assert make_options("s", dashboard=True).dashboard


def test_a_missing_dataset_path_fails_the_search_before_ray_with_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fracture_tune.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["search", "--config", "quickstart", "--name", "t", "--set", "dataset.path=xrays"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: dataset.path: 'xrays' does not exist" in err
    hint = next(line for line in err.splitlines() if line.startswith("hint: "))
    assert (
        f"relative paths resolve from the current folder ({tmp_path}), and {tmp_path} has no 'xrays'" in hint
    )
    assert "fracture-tune data synth DIR" in hint and "--set dataset.path=synthetic" in hint
    assert not (tmp_path / ".fracture-tune" / "runs" / "t").exists()


def test_the_dataset_check_expands_variables_and_skips_the_synthetic_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XRAYS", str(tmp_path))
    check_dataset_path(load_config("quickstart"))  # path: synthetic
    check_dataset_path(load_config("quickstart", {"dataset.path": "$XRAYS"}))
    with pytest.raises(FractureTuneError, match=rf"'\$XRAYS/gone' \({tmp_path}/gone\) does not exist"):
        check_dataset_path(load_config("quickstart", {"dataset.path": "$XRAYS/gone"}))
