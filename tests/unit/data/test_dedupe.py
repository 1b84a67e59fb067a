"""Duplicates and label conflicts: identical pixels share a group; the same pixels under two labels are
excluded; a CSV group joins its rows."""

from __future__ import annotations

from fracture_tune.data.dedupe import find_duplicates


def test_identical_pixels_share_a_group_and_conflicts_are_excluded() -> None:
    hashes = ["a", "b", "a", "c", "c", "d"]
    labels = [0, 1, 0, 0, 1, 1]
    found = find_duplicates(hashes, labels, [None] * 6)
    assert found.duplicate_sets == [[0, 2]]
    assert found.conflict_sets == [[3, 4]]  # the same pixels filed as normal and as fractured
    assert found.keep.tolist() == [True, True, True, False, False, True]
    groups = found.groups.tolist()
    assert groups[0] == groups[2] and len({groups[0], groups[1], groups[5]}) == 3
    assert groups[3] == groups[4] == -1


def test_a_csv_group_joins_its_rows_with_their_duplicates() -> None:
    hashes = ["a", "b", "c", "a"]
    found = find_duplicates(hashes, [1, 1, 1, 1], ["patient-7", None, "patient-7", None])
    groups = found.groups.tolist()
    assert groups[0] == groups[2] == groups[3] != groups[1]  # row 3 joins via its pixels, row 2 via the group
    assert sorted(set(groups)) == [0, 1]  # numbered by first row
