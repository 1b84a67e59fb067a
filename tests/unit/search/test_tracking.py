"""Artifact locations, redaction and run names: what users see in MLflow and the terminal."""

from __future__ import annotations

from fracture_tune.search.results import trial_index
from fracture_tune.search.tracking import redact_secrets, run_name_for


def test_secrets_never_shown() -> None:
    """Any URI user-info (user, user:password, a token) and password/token query values become ***."""
    assert redact_secrets("https://ann:s3cret@mlflow.example.org/") == "https://***@mlflow.example.org/"
    assert redact_secrets("http://ghp_T0KEN@host:5000") == "http://***@host:5000"
    assert (
        redact_secrets("postgresql://u:pw@db:5432/mlflow?password=x&sslmode=require")
        == "postgresql://***@db:5432/mlflow?password=***&sslmode=require"
    )
    assert redact_secrets("http://host/api?token=abc&x=1") == "http://host/api?token=***&x=1"
    assert redact_secrets("sqlite:////abs/mlflow.db") == "sqlite:////abs/mlflow.db"
    assert redact_secrets("http://host:5000/x?u=a@b") == "http://host:5000/x?u=a@b"  # @ after the path
    # A password holding '@', and URIs inside a message (an error from the tracking server): one rule.
    assert redact_secrets("http://ann:p@ss@host:5000/x") == "http://***@host:5000/x"
    message = "Max retries for url http://ann:s3cret@10.0.0.2:5000/api (caused by http://tok@proxy:3128)"
    assert redact_secrets(message) == (
        "Max retries for url http://***@10.0.0.2:5000/api (caused by http://***@proxy:3128)"
    )


def test_pickled_trial_logger_holds_no_secret_and_reconnects_in_a_resumed_driver() -> None:
    import pickle

    from fracture_tune.search.tracking import ParentRun, TrialRunLogger, make_client

    secret_uri = "http://hunter2-token@127.0.0.1:9/"  # a client is created without connecting
    parent = ParentRun(make_client(secret_uri), "0", "parent", secret_uri)
    blob = pickle.dumps(TrialRunLogger(parent, "s", "val_auroc", 3))
    assert b"hunter2" not in blob and b"http://***@127.0.0.1:9/" in blob
    restored = pickle.loads(blob)  # this process opened the real URI: the redacted one maps back to it
    assert restored.parent.tracking_uri == secret_uri


def test_run_names_come_from_the_config() -> None:
    config = {"model": "tunable_cnn", "lr": 0.0032, "batch_size": 32}
    assert run_name_for(config, 7) == "tunable_cnn lr=3.2e-03 bs=32 #0007"
    assert trial_index("12_lr=0.003,c1=8") == 12 and trial_index("") == 0
