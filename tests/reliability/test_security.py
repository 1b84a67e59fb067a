"""Security defaults: loopback binds, token auth on, no unsafe unpickling, hashes checked, secrets redacted.

Fast (no Ray, no server): the commands `cluster up` would run are built and inspected; the sources are
parsed. The live counterpart (sockets of a running cluster, a request without the token) is in
``test_node_loss.py``.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_runs import REPO_ROOT, Observe

from fracture_tune.data.errors import FractureTuneError
from fracture_tune.search.tracking import redact_secrets

SOURCE_PACKAGES = ("data", "trainables", "search", "cluster", "benchmarks")


def _python_sources() -> list[Path]:
    return [path for package in SOURCE_PACKAGES for path in sorted((REPO_ROOT / package).rglob("*.py"))]


def _unsafe_torch_loads(path: Path) -> list[str]:
    """``torch.load(...)`` calls without ``weights_only=True`` (a pickle that runs arbitrary code)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if not (isinstance(function, ast.Attribute) and function.attr == "load"):
            continue
        if not (isinstance(function.value, ast.Name) and function.value.id == "torch"):
            continue
        safe = any(
            keyword.arg == "weights_only"
            and isinstance(keyword.value, ast.Constant)
            and keyword.value.value is True
            for keyword in node.keywords
        )
        if not safe:
            found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    return found


def test_no_torch_load_without_weights_only(observe: Observe) -> None:
    sources = _python_sources()
    unsafe = [hit for path in sources for hit in _unsafe_torch_loads(path)]
    assert len(sources) > 50, "the source tree was not found"
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"
    # pickle.load(s) of untrusted files is the same hazard; the only one allowed reads Tune's own state.
    pickles = [
        f"{path.relative_to(REPO_ROOT)}"
        for path in sources
        if "pickle.load" in path.read_text(encoding="utf-8") or "cloudpickle.load" in path.read_text()
    ]
    assert pickles == [], f"unpickling in library code: {pickles}"
    observe(
        fault="unsafe deserialisation (torch.load / pickle of a model file)",
        observed=f"{len(sources)} source files parsed: all torch.load use weights_only=True; no pickle.load",
        source_files=len(sources),
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sqlite:////abs/path/mlflow.db", "sqlite:////abs/path/mlflow.db"),
        ("sqlite:////abs/x.db?password=hunter2", "sqlite:////abs/x.db?password=***"),
        ("postgresql://mlflow:hunter2@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        (
            "https://alice:hunter2@mlflow.example/?Password=hunter2#x",
            "https://alice:***@mlflow.example/?Password=***#x",
        ),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://token@mlflow.example", "http://token@mlflow.example"),
    ],
)
def test_redact_uri_hides_passwords_and_keeps_paths(uri: str, expected: str) -> None:
    assert redact_secrets(uri) == expected


def test_tracking_password_never_reaches_mlflow_params(tmp_path: Path, observe: Observe) -> None:
    """The search's parent run logs its config as params: a password in tracking_uri must not be there."""
    from mlflow.tracking import MlflowClient
    from search_fixtures import write_search_config

    from fracture_tune.search.config import load_config
    from fracture_tune.search.run import SearchOptions, open_parent_run

    secret_uri = "postgresql://mlflow:hunter2@db.invalid/mlflow"
    config = load_config(write_search_config(tmp_path, tracking={"tracking_uri": secret_uri}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    class Prepared:  # what open_parent_run reads of a prepared dataset
        class dataset:  # noqa: N801 - mirrors the attribute path
            key, split_hash = "k", "h"

    parent = open_parent_run(config, SearchOptions(name="s", storage=tmp_path, tracking_uri=uri), Prepared)
    client = MlflowClient(uri)
    run = client.get_run(parent.run_id)
    logged = json.dumps({**run.data.params, **run.data.tags})
    artifact = Path(client.download_artifacts(parent.run_id, "resolved_config.yaml", str(tmp_path)))
    assert "hunter2" not in logged and "hunter2" not in artifact.read_text()
    assert run.data.params["search.tracking.tracking_uri"] == "postgresql://mlflow:***@db.invalid/mlflow"
    observe(
        fault="tracking URI with a password in the search config",
        observed="MLflow params, tags, resolved_config.yaml show `user:***@host`; sqlite:////abs kept",
    )


def test_cluster_services_bind_loopback_and_auth_is_on_by_default(tmp_path: Path) -> None:
    from fracture_tune.cluster.auth import create_token_file, ray_auth_env
    from fracture_tune.cluster.services import NodeCommand, head_command, mlflow_command
    from fracture_tune.search.cli import build_parser

    head = head_command(NodeCommand(tmp_path, 1, 100), 6379, 8265, 10001)
    assert head[head.index("--dashboard-host") + 1] == "127.0.0.1"
    assert head[head.index("--node-ip-address") + 1] == "127.0.0.1"
    server = mlflow_command(tmp_path, 5000)
    assert server[server.index("--host") + 1] == "127.0.0.1"
    assert build_parser().parse_args(["cluster", "up"]).no_auth is False
    token = create_token_file(tmp_path)
    assert token.stat().st_mode & 0o077 == 0, "the token file is readable by others"
    assert ray_auth_env(True, str(token))["RAY_AUTH_MODE"] == "token"


def test_local_search_starts_ray_without_a_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    from fracture_tune.search import run

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    run._start_ray(run.SearchOptions(name="local"))
    run._start_ray(run.SearchOptions(name="cluster", address="127.0.0.1:6379"))
    assert calls[0]["include_dashboard"] is False and "address" not in calls[0]
    assert calls[1]["address"] == "127.0.0.1:6379" and "include_dashboard" not in calls[1]


def test_predict_refuses_a_model_whose_weights_changed_after_retrain(
    tmp_path: Path, observe: Observe
) -> None:
    from fracture_tune.search.classifier.package import METADATA_FILE, WEIGHTS_FILE, sha256_of_file
    from fracture_tune.search.classifier.predict import load_classifier

    model = tmp_path / "retrain" / "model"
    (model / "extra_files").mkdir(parents=True)
    weights = model / "extra_files" / WEIGHTS_FILE
    weights.write_bytes(b"weights as retrain wrote them")
    (model / "extra_files" / METADATA_FILE).write_text("{}")
    report = {"model": {"local_dir": str(model), "weights_sha256": sha256_of_file(weights)}}
    (tmp_path / "retrain" / "report.json").write_text(json.dumps(report))
    weights.write_bytes(b"weights someone swapped in")
    with pytest.raises(FractureTuneError) as raised:
        load_classifier(str(model))
    assert WEIGHTS_FILE in str(raised.value) and "recorded by retrain" in str(raised.value)
    observe(
        fault="model weights modified after retrain",
        observed="predict stops: `sha256 ... differs from ... recorded by retrain in report.json`",
    )


def test_token_file_is_not_in_logs_of_cluster_state(tmp_path: Path) -> None:
    from fracture_tune.cluster.auth import create_token_file, masked_token

    token = create_token_file(tmp_path)
    secret = token.read_text()
    assert secret not in masked_token(token) and len(masked_token(token)) < 20
    shutil.rmtree(tmp_path)
