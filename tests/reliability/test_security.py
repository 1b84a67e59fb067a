"""Security defaults: what listens where, token auth on, no unsafe unpickling, hashes checked, no secrets.

Most tests here are fast (no Ray, no server): sources are parsed, URIs redacted, files hashed. Two are
measured on live processes (``tests/support/listening.py`` reads the sockets from /proc): every TCP port a
local search and a ``cluster up`` cluster listen on, which process holds it, on which address, and what a
request without the token gets there. docs/security.md's "What listens where" table is their result.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from cli_runs import REPO_ROOT, Observe, cli_env, fracture_tune, wait_for
from listening import LOOPBACK, Listener, listening_sockets, with_descendants
from search_fixtures import write_search_config

from fracture_tune.cluster.processes import ProcessRecord, process_start_ticks, session_members, stop_session
from fracture_tune.cluster.state import load_state
from fracture_tune.errors import FractureTuneError
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
        ("postgresql://mlflow:hunter2@db:5432/mlflow", "postgresql://***@db:5432/mlflow"),
        (
            "https://alice:hunter2@mlflow.example/?Password=hunter2#x",
            "https://***@mlflow.example/?Password=***#x",
        ),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://tok-5ecret@mlflow.example", "http://***@mlflow.example"),  # a token as user-info
        ("https://mlflow.example/?access_token=tok-5ecret", "https://mlflow.example/?access_token=***"),
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
    assert run.data.params["search.tracking.tracking_uri"] == "postgresql://***@db.invalid/mlflow"
    observe(
        fault="tracking URI with a password in the search config",
        observed="MLflow params, tags, resolved_config.yaml show `***@host`; sqlite:////abs kept",
    )


def test_cluster_up_turns_token_auth_on_with_a_private_token_file(tmp_path: Path) -> None:
    """What only the code shows (the live test below sees one cluster): auth is on unless --no-auth,
    and the token file is created 0600 (O_EXCL, never readable by others even for an instant)."""
    from fracture_tune.cli import build_parser
    from fracture_tune.cluster.auth import create_token_file, ray_auth_env

    assert build_parser().parse_args(["cluster", "up"]).no_auth is False
    token = create_token_file(tmp_path)
    assert token.stat().st_mode & 0o777 == 0o600, "the token file is readable by others"
    assert ray_auth_env(True, str(token)) == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


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
    from fracture_tune.classifier.package import METADATA_FILE, WEIGHTS_FILE, sha256_of_file
    from fracture_tune.classifier.predict import load_classifier

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


# What listens where, measured. Each listening socket is named (process kind, role) and compared, address
# by address, with the tables below: a new port, a port that moved to another address or a service that
# went away fails the test with the whole measured table. "{node}" is this machine's own address (Ray's
# node IP); "::" and "0.0.0.0" are all interfaces (gRPC listens dual-stack on "::").
ALL, ALL_V4, LOOPBACK_V4, LOOPBACK_MAPPED = "::", "0.0.0.0", "127.0.0.1", "::ffff:127.0.0.1"
NODE, NODE_MAPPED = "{node}", "::ffff:{node}"
Key = tuple[str, str]  # (process kind, role)

RAY_NODE: dict[Key, set[str]] = {  # every Ray node, head or worker, `ray.init` or `ray start`
    ("raylet", "node manager (gRPC)"): {ALL},
    ("raylet", "object manager (gRPC)"): {ALL},
    ("ray::DashboardAgent", "metrics agent (gRPC)"): {ALL},
    ("ray::DashboardAgent", "metrics export (Prometheus)"): {ALL_V4},
    ("ray::DashboardAgent", "agent HTTP"): {LOOPBACK_V4, NODE},
    ("ray::RuntimeEnvAgent", "runtime env agent (HTTP)"): {NODE},
    ("Ray worker", "core worker (gRPC)"): {ALL},  # ray::IDLE, trial actors, a job's supervisor
}
RAY_HEAD: dict[Key, set[str]] = {
    **RAY_NODE,
    ("gcs_server", "GCS (gRPC)"): {ALL},
    ("autoscaler monitor.py", "autoscaler metrics (Prometheus)"): {ALL_V4},
    ("dashboard.py", "dashboard metrics (Prometheus)"): {ALL_V4},
}
LOCAL_SEARCH = {**RAY_HEAD, ("search driver", "core worker (gRPC)"): {ALL}}
CLUSTER = {
    "ray-head": {
        **RAY_HEAD,
        ("dashboard.py", "dashboard + Jobs API (HTTP)"): {LOOPBACK_V4},
        ("Ray Client server", "Ray Client (gRPC)"): {LOOPBACK_MAPPED, NODE_MAPPED},
        ("job driver", "core worker (gRPC)"): {ALL},
        # The head's agent runs the Jobs API's job manager, a Ray client of its own once a job is submitted.
        ("ray::DashboardAgent", "core worker (gRPC)"): {ALL},
    },
    "ray-worker-1": RAY_NODE,
    "mlflow-server": {("mlflow server", "MLflow (HTTP)"): {LOOPBACK_V4}},
}
# What a request without the token gets on each port another machine can reach.
WITHOUT_TOKEN = {
    "GCS (gRPC)": "UNAUTHENTICATED",
    "Ray Client (gRPC)": "UNAUTHENTICATED",
    "agent HTTP": "HTTP 401",
    "runtime env agent (HTTP)": "HTTP 401",
    "metrics export (Prometheus)": "HTTP 200",  # Ray's metrics, readable by anyone who reaches the port
    "autoscaler metrics (Prometheus)": "HTTP 200",
    "dashboard metrics (Prometheus)": "HTTP 200",
}
PORT_FILES = {  # files Ray writes into its session dir, one per node: <name>_<node id> holding the port
    "gcs_server_port": "GCS (gRPC)",
    "dashboard_agent_listen_port": "agent HTTP",
    "metrics_agent_port": "metrics agent (gRPC)",
    "metrics_export_port": "metrics export (Prometheus)",
    "runtime_env_agent_port": "runtime env agent (HTTP)",
}
KINDS = {
    "_private/monitor.py": "autoscaler monitor.py",
    "dashboard/dashboard.py": "dashboard.py",
    "ray.util.client.server": "Ray Client server",
    "fracture_tune.cli": "search driver",
    "hold.py": "job driver",
}
ROLE_OF_KIND = {
    "autoscaler monitor.py": "autoscaler metrics (Prometheus)",
    "dashboard.py": "dashboard metrics (Prometheus)",
    "Ray worker": "core worker (gRPC)",
    "search driver": "core worker (gRPC)",
    "job driver": "core worker (gRPC)",
    "ray::DashboardAgent": "core worker (gRPC)",  # its other ports are in the session's port files
}
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")
FIXED_PORTS: dict[int, Key] = {  # Ray's defaults, the same for every Ray on the machine (`cluster up` moves
    52365: ("ray::DashboardAgent", "agent HTTP"),  # the agent's: each node gets free ports)
    44217: ("autoscaler monitor.py", "autoscaler metrics (Prometheus)"),
    44227: ("dashboard.py", "dashboard metrics (Prometheus)"),
}
RAYLET_PORT = re.compile(r"(ObjectManager|NodeManager) server started, listening on port (\d+)")


def _session_dirs(pids: Iterable[int]) -> set[Path]:
    """Ray session dirs named on the command lines of ``pids`` (raylet: --session_dir=…)."""
    found = set()
    for pid in pids:
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        for word in words:
            if word.startswith(("--session_dir=", "--session-dir=")):
                found.add(Path(word.split("=", 1)[1]))
    return found


def _ray_port_roles(pids: Iterable[int]) -> dict[int, str]:
    """Port → role, from what Ray wrote in its session dirs: the port files, and the raylet's log for the
    node manager and object manager (the ports it picked itself)."""
    roles: dict[int, str] = {}
    for session in _session_dirs(pids):
        for path in session.glob("*_port_*"):
            role = PORT_FILES.get(path.name.rsplit("_", 1)[0])
            if role and path.read_text().strip().isdigit():
                roles[int(path.read_text().strip())] = role
        log = session / "logs" / "raylet.out"
        text = log.read_text(errors="replace") if log.exists() else ""
        for manager, port in RAYLET_PORT.findall(text):
            roles[int(port)] = f"{manager.removesuffix('Manager').lower()} manager (gRPC)"
    return roles


def _describe(listener: Listener, roles: dict[int, str], named: dict[int, Key]) -> Key:
    """(process kind, role) of one listening socket; ``named``: ports the test knows (dashboard, MLflow)."""
    if listener.port in named:
        return named[listener.port]
    kind = KINDS.get(listener.process, listener.process)
    if kind.startswith("ray::") and kind not in RAY_AGENTS:
        kind = "Ray worker"
    return kind, roles.get(listener.port) or ROLE_OF_KIND.get(kind, "unknown")


def _measure(pids: Iterable[int], named: dict[int, Key]) -> list[tuple[Key, Listener]]:
    pids = set(pids)
    roles = _ray_port_roles(with_descendants(pids))
    return [(_describe(listener, roles, named), listener) for listener in listening_sockets(pids)]


def _table(measured: list[tuple[Key, Listener]]) -> dict[Key, set[str]]:
    table: dict[Key, set[str]] = defaultdict(set)
    for key, listener in measured:
        table[key].add(listener.address)
    return dict(table)


def _expected(table: dict[Key, set[str]], node: str) -> dict[Key, set[str]]:
    return {key: {address.format(node=node) for address in addresses} for key, addresses in table.items()}


def _rows(measured: list[tuple[Key, Listener]]) -> str:
    """One line per socket, for failure messages and the observation row."""
    lines = []
    for (kind, role), listener in sorted(measured, key=lambda item: (item[0], item[1].address)):
        host = f"[{listener.address}]" if ":" in listener.address else listener.address
        lines.append(f"{kind} {role} {host}:{listener.port} ({listener.reach})")
    return "; ".join(lines)


def _http_status(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except OSError as error:
        return f"no answer ({error})"


def _grpc_status(address: str, role: str) -> str:
    """gRPC status of a call without a token: GCS (list nodes) or Ray Client (ping)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc, ray_client_pb2, ray_client_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            if role == "GCS (gRPC)":
                request = gcs_service_pb2.GetAllNodeInfoRequest()  # type: ignore[attr-defined]
                gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetAllNodeInfo(request, timeout=20)
            else:
                ping = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)  # type: ignore[attr-defined]
                ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(ping, timeout=20)
        except grpc.RpcError as error:
            return str(error.code().name)
    return "OK"


def _without_token(measured: list[tuple[Key, Listener]], node: str) -> dict[str, str]:
    """Role → what a request without the token gets on this machine's own address, for every exposed
    port whose protocol the test speaks (HTTP, the GCS and Ray Client gRPC services)."""
    answers: dict[str, str] = {}
    for (_, role), listener in measured:
        if listener.reach == LOOPBACK or role in answers:
            continue
        address = f"{node}:{listener.port}"
        if "HTTP" in role or "Prometheus" in role:
            answers[role] = _http_status(f"http://{address}/")
        elif role in ("GCS (gRPC)", "Ray Client (gRPC)"):
            answers[role] = _grpc_status(address, role)
    return answers


def _node_ip() -> str:
    import ray.util

    return str(ray.util.get_node_ip_address())  # the address Ray picks for this machine


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _failed_binds(pids: Iterable[int]) -> set[int]:
    """Those of FIXED_PORTS that Ray's logs (in the session dirs of ``pids``) say it could not bind: another
    Ray on this machine held them, and Ray then runs on without that service."""
    failed = set()
    for session in _session_dirs(with_descendants(pids)):
        logs = {
            name: session / "logs" / name for name in ("dashboard_agent.log", "monitor.log", "dashboard.log")
        }
        text = {
            name: path.read_text(errors="replace") if path.exists() else "" for name, path in logs.items()
        }
        if "Agent port #52365 failed to bind" in text["dashboard_agent.log"]:
            failed.add(52365)
        for name, port in (("monitor.log", 44217), ("dashboard.log", 44227)):
            if "An exception occurred while starting the metrics server" in text[name]:
                failed.add(port)
    return failed


def _check(
    measured: list[tuple[Key, Listener]], expected: dict[Key, set[str]], node: str, what: str, busy: set[int]
) -> None:
    """The measured table is ``expected`` exactly, except for the services whose fixed port (FIXED_PORTS)
    Ray could not bind (``busy``: another Ray on this machine held it): those listen on some of their
    expected addresses or none (the agent retries its two binds, keeping whichever succeeded)."""
    table, wanted = _table(measured), _expected(expected, node)
    for key in (FIXED_PORTS[port] for port in busy):
        if key in wanted and table.get(key, set()) <= wanted[key]:
            table.pop(key, None)
            wanted.pop(key)
    assert table == wanted, f"{what} listens elsewhere: {_rows(measured)}"
    for _, listener in measured:  # the reach docs/security.md states follows from the address
        assert (listener.reach == LOOPBACK) == (listener.address in (LOOPBACK_V4, LOOPBACK_MAPPED))


def _exposed_roles(measured: list[tuple[Key, Listener]]) -> set[str]:
    return {role for (_, role), listener in measured if listener.reach != LOOPBACK}


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_a_local_search_listens_where_measured(tmp_path: Path, observe: Observe) -> None:
    """A real `fracture-tune search` (its own Ray, two trials running), measured mid-search, then
    stopped with Ctrl-C as a user would (Tune saves its state, Ray shuts down)."""
    config = write_search_config(
        tmp_path,
        training={"epochs": 5000},  # far more than the test waits for: it is stopped by SIGINT
        scheduler={"max_t": 5000, "grace_period": 5000},
        budget={"num_trials": 2, "time_budget_s": 300},
        dataset={"cache_root": str(tmp_path / "datasets")},
    )
    search = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fracture_tune.cli",
            "search",
            "--config",
            str(config),
            "--name",
            "listen",
            "--storage",
            str(tmp_path / "runs"),
        ],
        cwd=tmp_path,
        env=cli_env(),
        stdout=(tmp_path / "search.out").open("w"),
        stderr=(tmp_path / "search.err").open("w"),
        start_new_session=True,
    )
    leader = ProcessRecord("search", search.pid, process_start_ticks(search.pid) or -1, "")
    node = _node_ip()

    def trials_running() -> list[tuple[Key, Listener]] | None:
        assert search.poll() is None, (tmp_path / "search.err").read_text()[-3000:]
        measured = _measure([search.pid], named={})
        trials = [listener for _, listener in measured if listener.process.startswith("ray::ImplicitFunc")]
        driver = [listener for (kind, _), listener in measured if kind == "search driver"]
        return measured if trials and driver else None

    try:
        measured = wait_for(trials_running, 150, "a trial of the search to listen", interval=1.0)
        busy = _failed_binds([search.pid])
        gcs = next(listener.pid for (kind, _), listener in measured if kind == "gcs_server")
        auth_mode = _environment(gcs).get("RAY_AUTH_MODE")
        answers = _without_token(measured, node)
    finally:
        search.send_signal(signal.SIGINT)
        try:
            search.wait(timeout=60)
        finally:
            stop_session(leader)  # whatever is left of its Ray (nothing, when Ctrl-C worked)
    _check(measured, LOCAL_SEARCH, node, "a local search", busy)
    assert auth_mode == "token", "Ray 2.60 turns token auth on for a local cluster unless told otherwise"
    assert answers == {role: WITHOUT_TOKEN[role] for role in answers}, answers
    assert set(answers) == _exposed_roles(measured) & set(WITHOUT_TOKEN) and "GCS (gRPC)" in answers
    observe(
        fault="network exposure of a local search (`fracture-tune search`, Ray started by the search)",
        observed=(
            f"{_rows(measured)}. Without the token: "
            + ", ".join(f"{role} → {answer}" for role, answer in sorted(answers.items()))
            + f". Token auth: RAY_AUTH_MODE={auth_mode} (Ray's default, ~/.ray/auth_token)"
            + (f". Held by another Ray here, so not started: ports {sorted(busy)}" if busy else "")
        ),
        node_address=node,
        fixed_ports_held_by_others=sorted(busy),
        listening=[str(listener) for _, listener in measured],
        without_token=answers,
    )


@pytest.mark.cluster
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_cluster_up_listens_where_measured(tmp_path: Path, observe: Observe) -> None:
    """`cluster up --workers 1` (default flags) with a job holding one actor on each node, measured per
    service: head, worker node, MLflow server."""
    cluster_dir = tmp_path / "cluster"
    up = fracture_tune(
        "cluster", "up", "--workers", "1", "--cluster-dir", str(cluster_dir), cwd=tmp_path, timeout=400
    )
    try:
        state = load_state(cluster_dir)
        assert up.returncode == 0 and state is not None and state.mlflow, up.stdout + up.stderr
        job_dir = tmp_path / "job"
        job_dir.mkdir()
        (job_dir / "hold.py").write_text(HOLD_JOB)
        submitted = fracture_tune(
            "submit",
            "--no-wait",
            "--cluster-dir",
            str(cluster_dir),
            "--working-dir",
            str(job_dir),
            "--",
            "python",
            "hold.py",
            cwd=tmp_path,
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        node = _node_ip()
        named = {
            _port(state.dashboard_url): ("dashboard.py", "dashboard + Jobs API (HTTP)"),
            _port(state.client_address): ("Ray Client server", "Ray Client (gRPC)"),
            _port(state.tracking_uri or ""): ("mlflow server", "MLflow (HTTP)"),
        }
        services = {record.label: record for record in state.all_processes()}

        def measure_all() -> dict[str, list[tuple[Key, Listener]]]:
            return {label: _measure(session_members(record), named) for label, record in services.items()}

        def holders_listening() -> dict[str, list[tuple[Key, Listener]]] | None:
            measured = measure_all()
            holders = [
                label for label, found in measured.items() for _, sock in found if "Holder" in sock.process
            ]
            return measured if sorted(holders) == ["ray-head", "ray-worker-1"] else None

        measured = wait_for(holders_listening, 150, "the job's actors to listen on both nodes", interval=1.0)
        busy = _failed_binds(session_members(services["ray-head"]))
        answers = {label: _without_token(found, node) for label, found in measured.items()}
        raylets = {
            label: sock.pid
            for label, found in measured.items()
            for (kind, _), sock in found
            if kind == "raylet"
        }
        auth_modes = {label: _environment(pid).get("RAY_AUTH_MODE") for label, pid in raylets.items()}
        token_mode = Path(state.token_path or "").stat().st_mode & 0o777
    finally:
        fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir), cwd=tmp_path)
    for label, expected in CLUSTER.items():
        _check(measured[label], expected, node, label, busy)
    for label, found in answers.items():
        assert found == {role: WITHOUT_TOKEN[role] for role in found}, f"{label}: {found}"
        assert set(found) == _exposed_roles(measured[label]) & set(WITHOUT_TOKEN)
    assert {"GCS (gRPC)", "Ray Client (gRPC)"} <= set(answers["ray-head"])
    assert auth_modes == {"ray-head": "token", "ray-worker-1": "token"} and token_mode == 0o600
    # `ray start` gives every core worker (task workers, actors, job drivers) a port from 10002-19999.
    workers = [sock.port for found in measured.values() for (_, role), sock in found if "core worker" in role]
    assert workers and all(10002 <= port <= 19999 for port in workers), f"core worker ports {workers}"
    observe(
        fault="network exposure of a `cluster up --workers 1` cluster (default flags), a job running",
        observed=" | ".join(f"{label}: {_rows(found)}" for label, found in measured.items())
        + ". Without the token: "
        + ", ".join(f"{role} → {answer}" for role, answer in sorted(answers["ray-head"].items()))
        + f". Core workers on ports 10002–19999 ({sorted(workers)}); token file mode {token_mode:o}"
        + (f". Held by another Ray here, so not started: ports {sorted(busy)}" if busy else ""),
        node_address=node,
        fixed_ports_held_by_others=sorted(busy),
        listening={label: [str(sock) for _, sock in found] for label, found in measured.items()},
        without_token=answers,
    )


HOLD_JOB = """
import time, ray
ray.init()

@ray.remote(num_cpus=1)
class Holder:  # one per node: each of the two 1-CPU nodes runs one
    def node(self):
        return ray.get_runtime_context().get_node_id()

holders = [Holder.remote() for _ in range(2)]
print("holding on", ray.get([holder.node.remote() for holder in holders]), flush=True)
time.sleep(600)
"""


def _port(address: str) -> int:
    return int(address.rstrip("/").rsplit(":", 1)[1])
