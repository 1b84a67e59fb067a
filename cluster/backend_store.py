"""Where the cluster's MLflow server keeps runs: a sqlite file in the cluster dir, or a PostgreSQL database.

A PostgreSQL password never goes on a command line (``/proc/PID/cmdline`` is readable by every user) nor
into the state file or a log. ``mlflow server`` gets the URI without it and the password as ``PGPASSWORD``
in its environment (readable by the same user and root only): libpq, under both psycopg drivers, falls back
to ``PGPASSWORD``, then ``PGPASSFILE``/``~/.pgpass``, when the URI has no password. A password written in
the URI is moved there; ``PGPASSWORD`` set for `cluster up` goes to the MLflow server and not to Ray nodes.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from fracture_tune.data.redaction import redact_secrets
from fracture_tune.errors import FractureTuneError

logger = logging.getLogger(__name__)

# SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 and 2.0 to psycopg2: we name the driver ourselves.
DEFAULT_POSTGRES_DRIVER = "psycopg"
POSTGRES_DRIVERS = {"psycopg": "psycopg", "psycopg2": "psycopg2"}  # driver in the URI → module to import
INSTALL_HINTS = {
    "psycopg": "pip install 'fracture-tune[postgres]' (psycopg 3 with its own libpq) where `cluster up` runs",
    "psycopg2": "pip install psycopg2-binary, or drop '+psycopg2' to use psycopg 3 (fracture-tune[postgres])",
}
PASSWORD_HINT = "set PGPASSWORD for `cluster up`, or put it in ~/.pgpass (mode 0600)"


@dataclass(frozen=True)
class BackendStore:
    """The ``--backend-store-uri`` handed to ``mlflow server`` and the environment it needs."""

    uri: str  # never holds a password
    password: str | None = field(default=None, repr=False)

    @property
    def is_postgres(self) -> bool:
        return self.uri.startswith("postgresql")

    @property
    def driver_module(self) -> str | None:
        if not self.is_postgres:
            return None
        return POSTGRES_DRIVERS[urlsplit(self.uri).scheme.partition("+")[2]]

    def shown(self) -> str:
        """Safe to print and record (the URI holds no password; redaction is a second guard)."""
        return redact_secrets(self.uri)

    def server_env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.password} if self.password else {}


def sqlite_store(cluster_dir: Path) -> BackendStore:
    return BackendStore(f"sqlite:///{Path(cluster_dir).resolve() / 'mlflow.db'}")


def postgres_store(uri: str, environ: Mapping[str, str]) -> BackendStore:
    """``postgresql[+psycopg|+psycopg2]://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?...]`` as a store.

    The password is taken out of the URI (user-info or ``?password=``); without one, ``environ``'s
    ``PGPASSWORD`` is passed on, and without that libpq reads ``~/.pgpass`` itself.
    """
    parts = urlsplit(uri)
    dialect, _, driver = parts.scheme.partition("+")
    if dialect != "postgresql" or (driver and driver not in POSTGRES_DRIVERS):
        raise FractureTuneError(
            f"--backend-store-uri {redact_secrets(uri)!r}: `cluster up` takes PostgreSQL "
            f"(postgresql://USER@HOST:PORT/DATABASE, drivers "
            f"{', '.join(f'postgresql+{name}' for name in POSTGRES_DRIVERS)}) or sqlite:///PATH",
            hint="leave --backend-store-uri out for the sqlite file in --cluster-dir",
        )
    if not parts.path.strip("/"):
        raise FractureTuneError(
            f"--backend-store-uri {redact_secrets(uri)!r} names no database",
            hint="end the URI with the database: postgresql://USER@HOST:5432/mlflow",
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    query_passwords = [value for key, value in query if key == "password"]
    password = unquote(parts.password) if parts.password is not None else None
    password = password or (query_passwords[0] if query_passwords else None)
    user_info = f"{parts.username}@" if parts.username else ""
    host = parts.netloc.rpartition("@")[2]
    clean_query = urlencode([(key, value) for key, value in query if key != "password"])
    clean = f"{dialect}+{driver or DEFAULT_POSTGRES_DRIVER}://{user_info}{host}{parts.path}"
    clean += f"?{clean_query}" if clean_query else ""
    if password:
        logger.warning(
            "the password in --backend-store-uri is visible to every user in `ps` while `cluster up` runs; "
            "%s instead (the MLflow server never gets it on its command line)",
            PASSWORD_HINT,
        )
    return BackendStore(clean, password or environ.get("PGPASSWORD") or None)


def backend_store_for(uri: str | None, cluster_dir: Path, environ: Mapping[str, str]) -> BackendStore:
    """The store `cluster up` gives MLflow: ``uri`` (PostgreSQL or sqlite), else ``cluster_dir``/mlflow.db."""
    if not uri:
        return sqlite_store(cluster_dir)
    if uri.startswith("sqlite:"):
        return BackendStore(uri)
    return postgres_store(uri, environ)


def _connect_hint(store: BackendStore, message: str) -> str:
    lowered = message.lower()
    if "password" in lowered:
        return f"check the user and its password: {PASSWORD_HINT}"
    if "does not exist" in lowered:
        database = urlsplit(store.uri).path.strip("/")
        return (
            f"create it first: `createdb -h HOST -U OWNER {database}` "
            "(docs/clusters.md: A team tracking server on PostgreSQL)"
        )
    return "is PostgreSQL running, listening on that host and port, and allowing this machine (pg_hba.conf)?"


def check_backend_store(store: BackendStore, timeout_s: float = 10.0) -> None:
    """Fail before anything starts if MLflow could not use ``store``: its driver or the database missing."""
    module = store.driver_module
    if module is None:
        return
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise FractureTuneError(
            f"the PostgreSQL driver {module!r} for {store.shown()} does not import in {sys.prefix}: {error}",
            hint=INSTALL_HINTS[module],
        ) from error
    import sqlalchemy
    from sqlalchemy.exc import SQLAlchemyError

    connect_args: dict[str, object] = {"connect_timeout": max(1, round(timeout_s))}
    if store.password:
        connect_args["password"] = store.password
    engine = sqlalchemy.create_engine(store.uri, connect_args=connect_args, poolclass=sqlalchemy.NullPool)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__]
        message = redact_secrets("; ".join(line.strip() for line in reason[:2]))
        raise FractureTuneError(
            f"cannot use the MLflow database {store.shown()}: {message}", hint=_connect_hint(store, message)
        ) from None
    finally:
        engine.dispose()
