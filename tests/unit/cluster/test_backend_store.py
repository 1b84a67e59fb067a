"""The MLflow server's database for `cluster up`: URIs parsed, passwords kept off command lines and files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fracture_tune.cluster.backend_store import (
    BackendStore,
    backend_store_for,
    check_backend_store,
    postgres_store,
)
from fracture_tune.cluster.local import LocalClusterSpec, service_env, start_local_cluster
from fracture_tune.cluster.services import mlflow_command
from fracture_tune.cluster.state import ClusterState, load_state, save_state, state_path
from fracture_tune.errors import FractureTuneError

SECRET = "s3cr@t/pw"  # characters that URL-encode, to prove the decoded password is the one handed on


@pytest.mark.parametrize(
    ("uri", "clean"),
    [
        (
            "postgresql://team:s3cr%40t%2Fpw@db.example:5432/mlflow",
            "postgresql+psycopg://team@db.example:5432/mlflow",
        ),
        (
            "postgresql+psycopg2://team:s3cr%40t%2Fpw@db.example/mlflow?sslmode=require",
            "postgresql+psycopg2://team@db.example/mlflow?sslmode=require",
        ),
        (
            "postgresql://team@db.example:5432/mlflow?password=s3cr%40t%2Fpw&sslmode=require",
            "postgresql+psycopg://team@db.example:5432/mlflow?sslmode=require",
        ),
    ],
)
def test_the_password_leaves_the_uri_for_the_server_environment(uri: str, clean: str) -> None:
    store = postgres_store(uri, {"PGPASSWORD": "from-the-environment"})
    assert store.uri == clean  # the password in the URI wins over PGPASSWORD
    assert store.server_env() == {"PGPASSWORD": SECRET}
    command = " ".join(mlflow_command(Path("/tmp/c"), 5000, store.uri))
    assert "s3cr" not in command and clean in command
    assert "s3cr" not in repr(store) and "s3cr" not in store.shown()


def test_pgpassword_is_handed_on_and_without_one_libpq_reads_pgpass() -> None:
    uri = "postgresql://team@127.0.0.1:5432/mlflow"
    assert postgres_store(uri, {"PGPASSWORD": SECRET}).server_env() == {"PGPASSWORD": SECRET}
    assert postgres_store(uri, {}).server_env() == {}
    assert postgres_store(uri, {}).shown() == "postgresql+psycopg://***@127.0.0.1:5432/mlflow"


@pytest.mark.parametrize(
    ("uri", "said"),
    [
        ("mysql://team:pw@db/mlflow", "takes PostgreSQL"),
        ("postgresql+pg8000://team:pw@db/mlflow", "takes PostgreSQL"),
        ("postgres://team:pw@db/mlflow", "takes PostgreSQL"),  # SQLAlchemy refuses this spelling too
        ("postgresql://team:pw@db:5432/", "names no database"),
    ],
)
def test_unusable_uris_are_refused_with_the_password_redacted(uri: str, said: str) -> None:
    with pytest.raises(FractureTuneError, match=said) as raised:
        postgres_store(uri, {})
    assert ":pw@" not in str(raised.value) and raised.value.hint


def test_without_a_uri_the_store_is_the_sqlite_file_in_the_cluster_dir(tmp_path: Path) -> None:
    assert backend_store_for(None, tmp_path, {}).uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert mlflow_command(tmp_path, 5000)[3] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert backend_store_for("sqlite:////data/m.db", tmp_path, {}).uri == "sqlite:////data/m.db"
    assert backend_store_for("postgresql://u@h/db", tmp_path, {}).driver_module == "psycopg"


def test_ray_nodes_do_not_inherit_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", SECRET)
    assert "PGPASSWORD" not in service_env(auth_enabled=False, token_path=None)


def test_a_missing_driver_stops_before_anything_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now raises ImportError
    store = BackendStore("postgresql+psycopg://team@127.0.0.1:9/mlflow", password=SECRET)
    with pytest.raises(FractureTuneError, match="driver 'psycopg'") as raised:
        check_backend_store(store)
    assert "fracture-tune[postgres]" in (raised.value.hint or "")
    assert SECRET not in str(raised.value)


def test_backend_store_without_mlflow_is_refused(tmp_path: Path) -> None:
    spec = LocalClusterSpec(workers=0, with_mlflow=False, backend_store_uri="postgresql://u@h/db")
    with pytest.raises(FractureTuneError, match="--no-mlflow"):
        start_local_cluster(spec, tmp_path)
    assert not state_path(tmp_path).exists()


def test_state_files_from_before_the_backend_field_still_load(tmp_path: Path) -> None:
    state = ClusterState(
        "127.0.0.1:6379",
        "http://127.0.0.1:8265",
        "ray://127.0.0.1:10001",
        "http://127.0.0.1:5000",
        False,
        None,
        str(tmp_path),
    )
    save_state(state, tmp_path)
    payload = json.loads(state_path(tmp_path).read_text())
    del payload["backend_store"]
    state_path(tmp_path).write_text(json.dumps(payload))
    loaded = load_state(tmp_path)
    assert loaded is not None and loaded.backend_store is None
