"""The one exception type users see: what was wrong and what to do next."""

from __future__ import annotations

from collections.abc import Iterable


class FractureTuneError(Exception):
    """An error caused by the user's input or environment, reported without a traceback.

    ``message`` names the bad thing (file, key, value); ``hint`` says what to do about it.
    The CLI prints both and exits with status 2.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest of ``candidates`` to a mistyped ``name`` (for a hint), or None when nothing is close."""
    import difflib

    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None
