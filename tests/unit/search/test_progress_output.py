"""A search's progress lines go where its call said, by search name, and nowhere otherwise."""

from __future__ import annotations

from fracture_tune.search.progress_output import progress_output, set_progress_output


def test_progress_goes_to_the_named_searchs_printer_until_silenced() -> None:
    lines: list[str] = []
    set_progress_output("s1", lines.append)
    printer = progress_output("s1")
    assert printer is not None and progress_output("s2") is None
    printer("trial 1 done")
    assert lines == ["trial 1 done"]
    set_progress_output("s1", None)
    assert progress_output("s1") is None
