"""Bad input end to end, through the CLI: each failure is an ``error:`` line naming the thing, a ``hint:``
naming the fix, a non-zero exit, and no output left behind that looks like a valid result.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cli_runs import Observe, error_lines, fracture_tune
from PIL import Image
from search_fixtures import write_line_dataset, write_search_config

pytestmark = pytest.mark.integration

CORRUPT = ("scan.png", "truncated.png", "empty.png")


def _corrupt_dataset(root: Path) -> Path:
    write_line_dataset(root, per_class=40)
    (root / "Fractured" / "scan.png").write_bytes(b"%PDF-1.4\n1 0 obj\n")  # a PDF named .png
    good = (root / "Non_fractured" / "Non_fractured_000.png").read_bytes()
    (root / "Non_fractured" / "truncated.png").write_bytes(good[:200])
    (root / "Fractured" / "empty.png").write_bytes(b"")
    return root


def _assert_clean_failure(done: Any, *names: str, code: int = 2) -> str:
    lines = error_lines(done)
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-3000:]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and any(line.startswith("hint:") for line in lines), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    for name in names:
        assert name in errors[0], (name, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A dataset with corrupted files, its prepared cache and a 1-epoch model trained on it."""
    root = tmp_path_factory.mktemp("bad_input")
    source = _corrupt_dataset(root / "src")
    prepared = fracture_tune(
        "data", "prepare", str(source), "--out", "ds", "--size", "32", "--workers", "1", cwd=root
    )
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    cache = next(path for path in (root / "ds").iterdir() if path.is_dir())
    config = {"model": "tiny_cnn", "epochs": 1, "input_size": 32, "device": "cpu", "num_threads": 1}
    (root / "engine.json").write_text(json.dumps(config))
    retrained = fracture_tune(
        "retrain",
        "--config-json",
        "engine.json",
        "--dataset",
        str(cache),
        "--epochs",
        "1",
        "--no-register",
        "--no-baseline",
        "--resamples",
        "20",
        "--out",
        "model_run",
        "--tracking-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        cwd=root,
    )
    assert retrained.returncode == 0, retrained.stderr[-3000:]
    return {"root": root, "prepare": prepared, "cache": cache, "model": root / "model_run" / "model"}


def test_prepare_reports_corrupted_images_and_keeps_the_rest(
    workspace: dict[str, Any], observe: Observe
) -> None:
    stdout = workspace["prepare"].stdout
    assert "80 images ready, 3 rejected" in stdout, stdout
    report = (workspace["cache"] / "report.txt").read_text()
    assert all(name in report for name in CORRUPT), report
    observe(
        fault="3 corrupted files (PDF named .png, truncated PNG, empty file) among 80 good images",
        observed="`data prepare` exit 0: `80 images ready, 3 rejected`; report.txt names each file, reason",
    )


@pytest.mark.slow
def test_search_runs_on_the_good_images_of_a_corrupted_dataset(tmp_path: Path, observe: Observe) -> None:
    _corrupt_dataset(tmp_path / "images")  # write_search_config uses this folder as it is
    config = write_search_config(
        tmp_path, budget={"num_trials": 2}, training={"epochs": 1}, scheduler={"max_t": 1, "grace_period": 1}
    )
    done = fracture_tune(
        "search",
        "--config",
        str(config),
        "--name",
        "c",
        "--tracking-uri",
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--num-cpus",
        "2",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_parquet(tmp_path / ".fracture-tune" / "runs" / "c" / "results.parquet")
    assert len(frame) == 2 and set(frame["status"]) == {"finished"}
    observe(
        fault="search over a dataset folder holding 3 corrupted files",
        observed="search exit 0, 2/2 trials finished on the 80 decodable images",
    )


@pytest.mark.parametrize("kind", ["empty", "one-class"])
def test_empty_or_one_class_dataset_fails_before_any_run_folder(
    tmp_path: Path, kind: str, observe: Observe
) -> None:
    images = tmp_path / "data"
    for folder in ("Fractured", "Non_fractured"):
        (images / folder).mkdir(parents=True)
    if kind == "one-class":
        write_line_dataset(tmp_path / "full", per_class=10)
        shutil.copytree(tmp_path / "full" / "Fractured", images / "Fractured", dirs_exist_ok=True)
    config = write_search_config(tmp_path)
    done = fracture_tune(
        "search", "--config", str(config), "--name", "d", "--set", f"dataset.path={images}", cwd=tmp_path
    )
    error = _assert_clean_failure(done, str(images), "non_fractured")
    assert not (tmp_path / ".fracture-tune" / "runs" / "d").exists()
    shown = error.replace(str(tmp_path), "…")
    observe(fault=f"{kind} dataset folder", observed=f"exit 2, `{shown[:120]}...`; no run folder")


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("scheduler.grace_perod=1", "scheduler.grace_perod"),
        ("training.optimiser=adam", "optimiser"),
        ("budget.num_trials=0", "budget.num_trials"),
        ("dataset.val_fraction=1.5", "dataset.val_fraction"),
        ("resources.cpus_per_trial=-1", "resources.cpus_per_trial"),
        ("metric=val_aurc", "val_aurc"),
    ],
)
def test_config_typos_and_out_of_range_values(tmp_path: Path, override: str, named: str) -> None:
    config = write_search_config(tmp_path)
    done = fracture_tune("search", "--config", str(config), "--name", "t", "--set", override, cwd=tmp_path)
    assert done.returncode == 2 and named in done.stderr and "error:" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".fracture-tune" / "runs").exists()


def test_retrain_without_a_best_trial_or_dataset(tmp_path: Path, observe: Observe) -> None:
    from retrain_fixtures import fake_search

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    searched = fake_search(tmp_path, uri, {"model": "tiny_cnn", "epochs": 1, "input_size": 32})
    (searched["run_dir"] / "best_trial.json").unlink()  # what a search with no successful trial leaves
    done = fracture_tune(
        "retrain", "--search", "fake", "--storage", "runs", "--tracking-uri", uri, cwd=tmp_path
    )
    no_best = _assert_clean_failure(done, "best_trial.json")
    unknown = _assert_clean_failure(
        fracture_tune("retrain", "--search", "nope", "--storage", "runs", cwd=tmp_path), "nope"
    )
    assert not (searched["run_dir"] / "retrain").exists()
    observe(
        fault="retrain of a search with no best trial / an unknown search",
        observed=f"exit 2: `{no_best.replace(str(tmp_path), '…')}`; `{unknown.replace(str(tmp_path), '…')}`; "
        "no retrain folder",
    )


def test_registry_name_that_does_not_exist(workspace: dict[str, Any], observe: Observe) -> None:
    root = workspace["root"]
    image = next((root / "src" / "Fractured").glob("Fractured_*.png"))
    done = fracture_tune(
        "predict",
        "--model",
        "models:/no-such-model@champion",
        "--tracking-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        str(image),
        cwd=root,
    )
    error = _assert_clean_failure(done, "no-such-model")
    shown = error.replace(str(root), "…")
    observe(fault="predict with a registry name that does not exist", observed=f"exit 2: `{shown}`")


def test_predict_on_a_pdf_fails_naming_the_file(workspace: dict[str, Any], observe: Observe) -> None:
    root = workspace["root"]
    pdf = root / "scan.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj\n")
    done = fracture_tune(
        "predict", "--model", str(workspace["model"]), str(pdf), "--out", "pdf.csv", cwd=root
    )
    error = _assert_clean_failure(done, "scan.pdf", code=1)
    rows = pd.read_csv(root / "pdf.csv")
    assert list(rows["status"]) == ["rejected"]  # the table says so: no probability that looks valid
    shown = error.replace(str(root), "…")
    observe(fault="predict on a PDF", observed=f"exit 1: `{shown}`; output table row status=rejected")


def test_predict_on_mixed_folder_and_sixteen_bit_png(workspace: dict[str, Any], observe: Observe) -> None:
    root = workspace["root"]
    mixed = root / "mixed"
    mixed.mkdir()
    eight_bit = np.asarray(Image.open(root / "src" / "Fractured" / "Fractured_001.png"))
    Image.fromarray(eight_bit).save(mixed / "eight.png")
    Image.fromarray(eight_bit.astype(np.uint16) * 257).save(mixed / "sixteen.png")  # same image, 16 bits
    assert Image.open(mixed / "sixteen.png").mode.startswith("I;16")
    (mixed / "scan.pdf").write_bytes(b"%PDF-1.4\n")
    (mixed / "notes.txt").write_text("not an image")
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    done = fracture_tune(
        "predict", "--model", str(workspace["model"]), str(mixed), "--out", "mixed.csv", cwd=root
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped 2 non-image file(s)" in done.stderr and "scan.pdf" in done.stderr, done.stderr[-2000:]
    rows = pd.read_csv(root / "mixed.csv").set_index("path")
    by_name = {Path(path).name: row for path, row in rows.iterrows()}
    assert by_name["broken.png"]["status"] == "rejected" and by_name["broken.png"]["reason"]
    assert by_name["eight.png"]["status"] == by_name["sixteen.png"]["status"] == "ok"
    assert by_name["sixteen.png"]["probability"] == pytest.approx(
        by_name["eight.png"]["probability"], abs=1e-6
    )
    observe(
        fault="predict on a folder of mixed files (8-bit PNG, 16-bit PNG, broken PNG, PDF, text)",
        observed=(
            "exit 0; 16-bit PNG scored like its 8-bit twin; broken.png row `rejected` with the reason; "
            "`skipped 2 non-image file(s) ...: notes.txt, scan.pdf` on stderr"
        ),
    )


class _HangUpServer:
    """A TCP port that reads each HTTP request, counts it and hangs up without an answer.

    To MLflow's client that is a tracking server it cannot reach, and every attempt it makes is counted.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(10)
                try:
                    head = connection.recv(65536)
                except OSError:
                    head = b""
                if head:
                    self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._socket.close()


def test_unreachable_tracking_server_fails_fast_without_leaking_the_password(
    tmp_path: Path, observe: Observe
) -> None:
    from fracture_tune.search.tracking import BOUNDED_HTTP_RETRIES

    config = write_search_config(tmp_path)
    server = _HangUpServer()
    uri = f"http://alice:hunter2@127.0.0.1:{server.port}"
    try:
        done = fracture_tune(
            "search",
            "--config",
            str(config),
            "--name",
            "u",
            "--tracking-uri",
            uri,
            cwd=tmp_path,
            timeout=600,  # a hang guard; the bound itself is the request count below
        )
    finally:
        server.close()
    error = _assert_clean_failure(done, "cannot reach MLflow", "http://***@127.0.0.1")
    assert "hunter2" not in done.stdout + done.stderr
    # "Fails fast" as a count, not a duration: the first MLflow call gives up after the bounded retries
    # (MLflow's defaults would make 1 + 7 attempts, minutes apart); nothing else is tried afterwards.
    retries = int(BOUNDED_HTTP_RETRIES["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
    assert len(server.requests) == 1 + retries, server.requests
    assert len(set(server.requests)) == 1, server.requests  # the same call, retried
    assert not (tmp_path / ".fracture-tune" / "runs" / "u").exists()
    observe(
        fault="search with an unreachable MLflow server (URI with a password)",
        observed=(
            f"exit 2 after {len(server.requests)} HTTP attempts (1 + {retries} retries): `{error[:75]}...`; "
            "password never printed; no run folder"
        ),
    )
