"""The one rule that hides secrets in URIs and messages, in the lowest layer so every layer can use it.

The search's tracking code and the cluster's MLflow database option both print and record URIs that may
carry a password or token; ``fracture_tune.search.tracking`` re-exports ``redact_secrets``.
"""

from __future__ import annotations

import re

REDACTED = "***"

# scheme://USERINFO@host — user, user:password or a token; up to the last "@" before the path.
_URI_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][\w+.-]*://)[^/\s?#]*@")
_QUERY_SECRET = re.compile(
    r"\b(?P<key>password|passwd|pwd|token|access_token|auth_token|api_key|apikey|secret)=[^&#\s]*",
    flags=re.IGNORECASE,
)


def redact_secrets(text: str) -> str:
    """Hide every secret in ``text``: the user-info of any URI (``scheme://user:password@host``,
    ``scheme://token@host`` → ``scheme://***@host``) and ``password=``/``token=``-like query values.

    The one redaction rule, for URIs and for messages that contain URIs (an error from a tracking server).
    It edits the text in place rather than re-joining parsed parts: ``urlunsplit`` turns
    ``sqlite:////abs/path`` into ``sqlite://abs/path`` (it drops the empty host), a different file.
    """
    redacted = _URI_USERINFO.sub(lambda match: f"{match['head']}{REDACTED}@", text)
    return _QUERY_SECRET.sub(lambda match: f"{match['key']}={REDACTED}", redacted)
