"""The cluster's MLflow server on a real PostgreSQL: `cluster up --backend-store-uri postgresql://…`.

A throwaway PostgreSQL runs in a temp folder (initdb + pg_ctl; as the ``postgres`` user when the tests run as
root, since initdb refuses root) on a free port of 127.0.0.1 with password (scram) auth, its unix socket in
the folder. Binaries missing: installed with ``apt-get install postgresql`` when root with apt (Debian 12:
12 packages, 23 MB, 13 s), else the PostgreSQL tests skip. A search and a retrain go through the server; their
runs and model version are read back from MLflow and counted in PostgreSQL's own tables. The password reaches
the server through ``PGPASSWORD`` and must not appear in any output, file or command line. About 2 minutes.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cli_runs import cli_env, error_lines, fracture_tune, free_port
from search_fixtures import child_runs, search_command, write_search_config

from fracture_tune.cluster.processes import session_members
from fracture_tune.cluster.state import load_state

pytestmark = pytest.mark.integration

NO_POSTGRES = "PostgreSQL not installed: apt-get install postgresql"
APT_TIMEOUT_S = 240
TRACKER, DATABASE, OWNER = "ft_tracker", "ft_mlflow", "postgres"


def _postgres_bin() -> Path | None:
    """Debian's newest ``/usr/lib/postgresql/<ver>/bin``, else wherever ``initdb`` is on PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _install_postgres() -> str | None:
    """``apt-get install postgresql`` when root with apt; None when it worked, else why it did not."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return NO_POSTGRES
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
    started = time.monotonic()
    try:
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
        if done.returncode != 0:  # a fresh image has no package lists yet
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=APT_TIMEOUT_S)
            done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"{NO_POSTGRES} (it took over {APT_TIMEOUT_S} s here)"
    print(f"apt-get install postgresql: exit {done.returncode} in {time.monotonic() - started:.0f} s")
    return None if done.returncode == 0 else f"{NO_POSTGRES} (apt-get: {done.stderr.strip()[-300:]})"


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL's programs refuse root: as root, run them as the ``postgres`` system user."""
    return ["runuser", "-u", OWNER, "--", *command] if os.geteuid() == 0 else command


@dataclass
class PostgresServer:
    bin_dir: Path
    folder: Path  # data dir, log and unix socket
    port: int
    password: str  # the tracker role's

    def uri(self, database: str = DATABASE, password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{TRACKER}{secret}@127.0.0.1:{self.port}/{database}"

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            _as_owner([str(self.bin_dir / command[0]), *command[1:]]),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.folder,
        )
        assert done.returncode == 0, f"{command[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done

    def sql(self, statement: str, database: str = DATABASE) -> list[str]:
        """Rows of ``statement`` run by the superuser over the unix socket, one string per row."""
        done = self.run(
            "psql",
            "-h",
            str(self.folder),
            "-p",
            str(self.port),
            "-U",
            OWNER,
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            statement,
        )
        return done.stdout.splitlines()


def _start_postgres(server: PostgresServer) -> None:
    folder = server.folder
    server.run(
        "initdb",
        "-D",
        str(folder / "data"),
        "-U",
        OWNER,
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = f"-p {server.port} -k {folder} -c listen_addresses=127.0.0.1 -F"
    server.run(
        "pg_ctl",
        "-D",
        str(folder / "data"),
        "-l",
        str(folder / "server.log"),
        "-w",
        "-t",
        "60",
        "-o",
        options,
        "start",
    )
    server.sql(f"CREATE ROLE {TRACKER} LOGIN PASSWORD '{server.password}'", database="postgres")
    server.sql(f"CREATE DATABASE {DATABASE} OWNER {TRACKER}", database="postgres")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        why_not = _install_postgres()
        bin_dir = _postgres_bin()
        if bin_dir is None:
            pytest.skip(why_not or NO_POSTGRES)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OWNER)
        except KeyError:
            pytest.skip(f"no '{OWNER}' system user to run PostgreSQL as (initdb refuses root)")
    pytest.importorskip("psycopg", reason="MLflow's PostgreSQL driver: pip install 'fracture-tune[postgres]'")
    # Under /tmp: pytest's tmp_path is private to root, and a unix socket path must stay short.
    folder = Path(tempfile.mkdtemp(prefix="ft-pg-"))
    if os.geteuid() == 0:
        owner = pwd.getpwnam(OWNER)
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(bin_dir, folder, free_port(), f"pw-{secrets.token_hex(12)}")
    try:
        _start_postgres(server)
        yield server
    finally:
        subprocess.run(
            _as_owner(
                [str(bin_dir / "pg_ctl"), "-D", str(server.folder / "data"), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(server.folder, ignore_errors=True)


def _cluster_up(cluster_dir: Path, uri: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cluster_dir.parent.mkdir(parents=True, exist_ok=True)
    # Ports from the kernel's ephemeral range: with another cluster on the defaults, `cluster up` would move
    # the Ray Client to 10002, inside Ray's worker port range (10002-19999), and the head would not start.
    ports = [str(free_port()) for _ in range(4)]
    return fracture_tune(
        "cluster",
        "up",
        "--workers",
        "0",
        "--cpus-per-node",
        "2",
        "--backend-store-uri",
        uri,
        "--cluster-dir",
        str(cluster_dir),
        "--port",
        ports[0],
        "--dashboard-port",
        ports[1],
        "--client-port",
        ports[2],
        "--mlflow-port",
        ports[3],
        cwd=cluster_dir.parent,
        env=env,
        timeout=400,
    )


def _nothing_started(cluster_dir: Path) -> bool:
    return not (cluster_dir / "state.json").exists() and not (cluster_dir / "logs").exists()


def test_unreachable_database_stops_cluster_up_before_anything_starts(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="MLflow's PostgreSQL driver: pip install 'fracture-tune[postgres]'")
    cluster_dir = tmp_path / "cluster"
    uri = f"postgresql://{TRACKER}:not-this-pw@127.0.0.1:{free_port()}/{DATABASE}"  # nothing listens there
    done = _cluster_up(cluster_dir, uri, cli_env())
    assert done.returncode == 2, done.stdout + done.stderr
    error, hint = error_lines(done)
    assert "cannot use the MLflow database postgresql+psycopg://***@127.0.0.1" in error
    assert "Connection refused" in error and hint.startswith("hint: is PostgreSQL running")
    assert "not-this-pw" not in done.stdout + done.stderr
    assert _nothing_started(cluster_dir)


def test_missing_driver_names_the_extra_to_install(tmp_path: Path) -> None:
    shadow = tmp_path / "no-driver" / "psycopg"  # `import psycopg` fails as if it were not installed
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no psycopg here')\n")
    cluster_dir = tmp_path / "cluster"
    python_path = filter(None, [str(shadow.parent), os.environ.get("PYTHONPATH")])
    env = cli_env(PYTHONPATH=os.pathsep.join(python_path))
    done = _cluster_up(cluster_dir, f"postgresql://{TRACKER}@127.0.0.1:5432/{DATABASE}", env)
    assert done.returncode == 2, done.stdout + done.stderr
    error, hint = error_lines(done)
    assert "PostgreSQL driver 'psycopg'" in error and "no psycopg here" in error
    assert "pip install 'fracture-tune[postgres]'" in hint
    assert _nothing_started(cluster_dir)


@pytest.mark.parametrize(
    ("database", "password", "said", "hinted"),
    [
        (DATABASE, "wrong-password-7d1e", "password authentication failed", "PGPASSWORD"),
        ("no_such_db", None, 'database "no_such_db" does not exist', "createdb"),
    ],
)
def test_wrong_password_or_database_is_named_without_the_password(
    postgres: PostgresServer, tmp_path: Path, database: str, password: str | None, said: str, hinted: str
) -> None:
    cluster_dir = tmp_path / "cluster"
    env = cli_env(PGPASSWORD=postgres.password)  # the URI's password, when there is one, wins
    done = _cluster_up(cluster_dir, postgres.uri(database, password), env)
    assert done.returncode == 2, done.stdout + done.stderr
    error, hint = error_lines(done)
    assert said in error and hinted in hint
    assert (password or postgres.password) not in done.stdout + done.stderr
    assert _nothing_started(cluster_dir)


def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]


def _proc(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # gone meanwhile
        return b""


def _tracked(tracking: str, run_dir: Path) -> dict[str, object]:
    """What the MLflow server reports: the search's parent and trial runs, the retrain run, the version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking)
    parent, children = child_runs(tracking)  # the trials and the retrain run, all under the search's run
    report = json.loads((run_dir / "retrain" / "report.json").read_text())
    retrain_run = client.get_run(report["mlflow"]["run_id"])
    versions = client.search_model_versions("name='fracture-classifier'")
    return {
        "parent": parent.info.run_id,
        "trials": {run.info.run_id for run in children if run.info.run_id != retrain_run.info.run_id},
        "children": {run.info.run_id for run in children},
        "children_parents": {run.data.tags["mlflow.parentRunId"] for run in children},
        "retrain": retrain_run.info.run_id,
        "versions": [(version.version, version.run_id) for version in versions],
    }


@pytest.mark.cluster
@pytest.mark.timeout(600)
def test_search_and_retrain_land_in_postgresql(postgres: PostgresServer, tmp_path: Path) -> None:
    cluster_dir = tmp_path / ".fracture-tune" / "cluster"  # `search --address` finds its token from here
    shown = f"postgresql+psycopg://***@127.0.0.1:{postgres.port}/{DATABASE}"
    up = _cluster_up(cluster_dir, postgres.uri(), cli_env(PGPASSWORD=postgres.password))
    outputs = [up.stdout, up.stderr]
    try:
        state = load_state(cluster_dir)
        assert up.returncode == 0 and state and state.mlflow and state.tracking_uri, up.stdout + up.stderr
        assert state.backend_store == shown and f"MLflow database      : {shown}" in up.stdout
        tracking = state.tracking_uri
        server_pids, head_pids = session_members(state.mlflow), session_members(state.nodes[0])
        assert all(postgres.password.encode() not in _proc(pid, "cmdline") for pid in server_pids + head_pids)
        assert f"PGPASSWORD={postgres.password}".encode() in _proc(state.mlflow.pid, "environ")
        assert all(b"PGPASSWORD=" not in _proc(pid, "environ") for pid in head_pids)  # jobs don't get it

        config = write_search_config(
            tmp_path, budget={"num_trials": 2}, training={"epochs": 2}, scheduler={"max_t": 2}
        )
        search = subprocess.run(
            search_command(
                "--config",
                str(config),
                "--name",
                "pg",
                "--address",
                state.gcs_address,
                "--tracking-uri",
                tracking,
            ),
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=400,
        )
        outputs += [search.stdout, search.stderr]
        assert search.returncode == 0, search.stdout[-3000:] + search.stderr[-3000:]
        retrain = fracture_tune(
            "retrain",
            "--search",
            "pg",
            "--epochs",
            "1",
            "--no-baseline",
            "--resamples",
            "50",
            "--tracking-uri",
            tracking,
            cwd=tmp_path,
            timeout=400,
        )
        outputs += [retrain.stdout, retrain.stderr]
        assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-3000:]
        tracked = _tracked(tracking, tmp_path / ".fracture-tune" / "runs" / "pg")
    finally:
        down = fracture_tune("cluster", "down", "--cluster-dir", str(cluster_dir), cwd=tmp_path)
    assert down.returncode == 0 and "stopped mlflow-server" in down.stdout, down.stdout + down.stderr
    assert f"runs in {shown}" in down.stdout

    assert len(tracked["trials"]) == 2 and tracked["children_parents"] == {tracked["parent"]}
    assert tracked["children"] == {*tracked["trials"], tracked["retrain"]}
    assert tracked["versions"] == [("1", tracked["retrain"])]
    # The rows are PostgreSQL's, and stay there after `down`; the sqlite default was never created.
    in_postgres = set(postgres.sql("SELECT run_uuid FROM runs"))
    assert in_postgres == {tracked["parent"], *tracked["children"]}
    assert postgres.sql("SELECT name, version, run_id FROM model_versions") == [
        f"fracture-classifier|1|{tracked['retrain']}"
    ]
    assert int(postgres.sql("SELECT count(*) FROM metrics")[0]) > 0
    assert not (cluster_dir / "mlflow.db").exists()
    assert not any(postgres.password in text for text in outputs + [down.stdout, down.stderr])
    assert _files_holding(tmp_path, postgres.password) == []  # state file, server log, run folders
