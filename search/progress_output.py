"""Where a call's progress lines go, and how they write a duration.

A call's ``progress`` option (``run_search``, ``retrain``) is a ``Progress``: True prints each line, a
callable receives it, False shows nothing (``progress_printer``). A running search's lines go where its call
says (``set_progress_output``), nowhere otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Progress = bool | Callable[[str], None]

# Where each running search's progress lines go (set by the call that runs it; a search without an entry is
# silent). Looked up by name, because Tune pickles its callbacks into the run folder and a resumed search gets
# the pickled ones back: a printer cannot travel in the pickle, a search name can.
_PROGRESS_OUTPUTS: dict[str, Callable[[str], None]] = {}


def progress_printer(progress: Progress) -> Callable[[str], None] | None:
    """Where a call's progress lines go: stdout (flushed) for True, the callable itself, None for False."""
    if progress is True:
        return lambda line: print(line, flush=True)
    return progress or None


def format_duration(seconds: float) -> str:
    """``1h05m``, ``3m20s``; ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def set_progress_output(search_name: str, emit: Callable[[str], None] | None) -> None:
    """Send ``search_name``'s progress lines to ``emit`` (None: silence them)."""
    if emit is None:
        _PROGRESS_OUTPUTS.pop(search_name, None)
    else:
        _PROGRESS_OUTPUTS[search_name] = emit


def progress_output(search_name: str) -> Callable[[str], None] | None:
    """Where ``search_name``'s progress lines go, or None."""
    return _PROGRESS_OUTPUTS.get(search_name)
