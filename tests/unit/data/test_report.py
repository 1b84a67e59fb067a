"""The prepare report: a user notices if report.txt miscounts excluded files, if an error message buries
the cause under hundreds of lines, or if report.json cannot be read back into the same report."""

from __future__ import annotations

from fracture_tune.data.report import PrepareReport


def _report() -> PrepareReport:
    report = PrepareReport(source="/src", kind="folder", image_size=64, scanned=9, prepared=5)
    report.rejected = [{"path": "bad.png", "reason": "not an image"}]
    report.conflicts = [{"paths": ["a.png", "b.png"], "labels": ["x", "y"], "reason": "same pixels"}]
    report.ignored = [{"path": "notes.txt", "reason": "not an image extension"}]
    report.class_counts = {"non_fractured": 3, "fractured": 2}
    report.split_counts = {
        "train": {"non_fractured": 2, "fractured": 2},
        "val": {"non_fractured": 1, "fractured": 0},
        "test": {"non_fractured": 0, "fractured": 0},
    }
    return report


def test_excluded_counts_rejects_and_every_file_of_a_conflict() -> None:
    assert _report().excluded_count == 3
    assert PrepareReport(source="s", kind="folder", image_size=8).excluded_count == 0


def test_round_trips_through_its_json_dict() -> None:
    report = _report()

    assert PrepareReport.from_dict(report.to_dict()) == report


def test_problems_name_each_file_and_cut_long_lists() -> None:
    report = _report()
    report.rejected += [{"path": f"r{index}.png", "reason": "empty"} for index in range(20)]

    lines = report.problems(limit=4)

    assert lines[0] == "bad.png: not an image"
    assert len(lines) == 5
    assert lines[-1] == "... and 18 more"
    assert any("a.png = b.png" in line for line in _report().problems())


def test_text_shows_counts_split_shares_and_each_section() -> None:
    text = _report().render_text()

    assert "scanned 9 files: 5 prepared, 1 rejected, 2 in label conflicts, 1 ignored" in text
    rows = {
        line.split()[0]: line.split()[1:]
        for line in text.splitlines()
        if line.split()[:1] in (["train"], ["val"], ["test"])
    }
    assert rows["train"] == ["2", "2", "4", "50.0%"]
    assert rows["val"] == ["1", "0", "1", "0.0%"]
    assert rows["test"] == ["0", "0", "0", "0.0%"]
    assert "notes: none" in text
    assert "rejected (1):" in text and "  bad.png: not an image" in text
