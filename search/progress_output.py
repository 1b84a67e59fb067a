"""Where a running search's progress lines go: where its call says (``set_progress_output``), nowhere
otherwise."""

from __future__ import annotations

from collections.abc import Callable

# Where each running search's progress lines go (set by the call that runs it; a search without an entry is
# silent). Looked up by name, because Tune pickles its callbacks into the run folder and a resumed search gets
# the pickled ones back: a printer cannot travel in the pickle, a search name can.
_PROGRESS_OUTPUTS: dict[str, Callable[[str], None]] = {}


def set_progress_output(search_name: str, emit: Callable[[str], None] | None) -> None:
    """Send ``search_name``'s progress lines to ``emit`` (None: silence them)."""
    if emit is None:
        _PROGRESS_OUTPUTS.pop(search_name, None)
    else:
        _PROGRESS_OUTPUTS[search_name] = emit


def progress_output(search_name: str) -> Callable[[str], None] | None:
    """Where ``search_name``'s progress lines go, or None."""
    return _PROGRESS_OUTPUTS.get(search_name)
