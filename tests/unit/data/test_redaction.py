"""The one redaction rule: no password or token of a URI or a query string reaches a message."""

from __future__ import annotations

from fracture_tune.data.redaction import REDACTED, redact_secrets


def test_the_user_info_of_any_uri_is_hidden() -> None:
    assert redact_secrets("http://alice:s3cret@mlflow:5000/x") == f"http://{REDACTED}@mlflow:5000/x"
    assert redact_secrets("postgresql://tok@db/m") == f"postgresql://{REDACTED}@db/m"
    assert "s3cret" not in redact_secrets("error from https://u:s3cret@h:443 after 3 tries")


def test_password_and_token_query_values_are_hidden() -> None:
    text = redact_secrets("postgresql://db/m?user=u&password=pw1&sslmode=require&TOKEN=abc#frag")
    assert "pw1" not in text and "abc" not in text
    assert "password=***" in text and "TOKEN=***" in text and "sslmode=require" in text


def test_uris_without_secrets_are_left_exactly_as_they_are() -> None:
    for uri in (
        "sqlite:////abs/path/mlflow.db",
        "sqlite:///rel.db",
        "http://127.0.0.1:5000",
        "file:///tmp/x",
    ):
        assert redact_secrets(uri) == uri
