"""``mlflow models serve`` scores image files with the registered model, as ``fracture-tune predict`` does.

A real retrain (1 epoch, 32 px synthetic radiographs) registers ``fracture-classifier@champion``; MLflow's own
scoring server serves it from the registry in this environment (``--env-manager local``), and each request
posts image files' bytes the way the model's signature takes them (base64 in JSON, column ``image``). The
answers must equal ``load_classifier(...).predict`` for the same files; text posted as an image (and a
request MLflow cannot parse) must get a 4xx naming the problem, not a 500.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runs import cli_env, free_port, stop_process_group, wait_for
from retrain_fixtures import registered_champion

pytestmark = pytest.mark.integration

CHAMPION = "models:/fracture-classifier@champion"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("serving")
    info = registered_champion(tmp_path)
    uri = info["uri"]
    port = free_port()
    log = tmp_path / "serve.log"
    venv_bin = Path(sys.executable).parent
    # As in an activated venv: MLflow starts the server with `exec uvicorn`, found on PATH.
    env = cli_env(MLFLOW_TRACKING_URI=uri, PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    server = subprocess.Popen(
        [
            str(venv_bin / "mlflow"),
            "models",
            "serve",
            "-m",
            CHAMPION,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def ready() -> bool:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    try:
        wait_for(ready, 120, "mlflow models serve to answer /ping", interval=1.0)
        yield {**info, "uri": uri, "url": f"http://127.0.0.1:{port}/invocations", "log": log}
    finally:
        stop_process_group(server)


def _post(url: str, contents: list[bytes], column: str = "image") -> tuple[int, dict[str, Any]]:
    """POST image files' bytes as the signature takes them; (HTTP status, the JSON answer)."""
    rows = [[base64.b64encode(content).decode("ascii")] for content in contents]
    return _post_body(url, json.dumps({"dataframe_split": {"columns": [column], "data": rows}}).encode())


def _post_body(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return int(error.code), json.loads(text)
        except ValueError:
            return int(error.code), {"text": text.decode("utf-8", "replace")}


def _assert_served_like_predict(served: dict[str, Any], files: list[Path]) -> None:
    from fracture_tune.classifier.predict import load_classifier

    status, answer = _post(served["url"], [path.read_bytes() for path in files])
    assert status == 200, answer
    expected = load_classifier(CHAMPION, served["uri"]).predict(files)
    assert list(expected["status"]) == ["ok"] * len(files)
    predictions = answer["predictions"]
    probabilities = [row["probability"] for row in predictions]
    assert probabilities == pytest.approx(list(expected["probability"]), abs=1e-5)
    assert [row["label"] for row in predictions] == list(expected["label"])
    report = json.loads((served["run_dir"] / "retrain" / "report.json").read_text())
    threshold = report["optimized"]["threshold"]["value"]
    assert [row["threshold"] for row in predictions] == [threshold] * len(files)


def test_served_model_scores_real_radiographs_like_predict(
    served: dict[str, Any], fracatlas_dir: Path
) -> None:
    """FracAtlas JPEGs (most RGB, 373x454): decoded, grayscaled and resized to 32 px like training images."""
    files = [sorted((fracatlas_dir / name).glob("*.jpg"))[0] for name in ("Fractured", "Non_fractured")]
    _assert_served_like_predict(served, files)


def test_served_model_scores_training_images_like_predict(served: dict[str, Any]) -> None:
    files = [sorted((served["source"] / name).glob("*.png"))[0] for name in ("Fractured", "Non_fractured")]
    _assert_served_like_predict(served, files)


def test_text_posted_as_an_image_gets_400_naming_the_problem(served: dict[str, Any]) -> None:
    good = sorted((served["source"] / "Fractured").glob("*.png"))[0].read_bytes()
    status, answer = _post(served["url"], [good, b"patient 17: left wrist, see attached\n"])
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"  # the model's own error
    assert "row 1: not a recognised image format" in answer["message"] and "base64" in answer["message"]
    assert "Traceback" not in json.dumps(answer)
    # What MLflow's server refuses before the model sees it: also a 4xx that says why.
    for (status, answer), problem in (
        (_post(served["url"], [good], column="picture"), "Model is missing inputs ['image']"),
        (_post_body(served["url"], b"patient 17: left wrist"), "Ensure that input is a valid JSON"),
        (_post_body(served["url"], good, content_type="image/png"), "only supports the following content"),
        # CSV cells arrive as text, never base64-decoded: a server-side path must not be opened.
        (_post_body(served["url"], b"image\n/etc/hostname\n", "text/csv"), "row 0 is of type str"),
    ):
        assert 400 <= status < 500 and problem in json.dumps(answer), (status, answer)
