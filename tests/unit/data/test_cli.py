"""`fracture-tune data prepare | info | synth` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_factory import make_class_tree

from fracture_tune.cli import main


def test_prepare_then_cache_hit_then_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_class_tree(tmp_path / "src", {"Fractured": 6, "not fractured": 6})
    (source / "Fractured" / "broken.jpg").write_bytes(b"")
    argv = [
        "data",
        "prepare",
        str(source),
        "--out",
        str(tmp_path / "cache"),
        "--size",
        "16",
        "--workers",
        "1",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "prepared (new cache)" in first and "12 images ready, 1 rejected" in first
    assert main(argv) == 0
    assert "cache hit: reused, not rebuilt" in capsys.readouterr().out
    cache_dir = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    assert main(["data", "info", str(cache_dir)]) == 0
    info = capsys.readouterr().out
    assert f"dataset key: {cache_dir.name}" in info
    assert "classes: non_fractured 6, fractured 6" in info
    assert "rejected Fractured/broken.jpg: empty file (0 bytes)" in info
    assert info.count("train") == 1 and "test" in info
    assert main(["data", "info", str(tmp_path / "cache")]) == 2  # the root, not a dataset in it
    assert f"pass one of them: {cache_dir}" in capsys.readouterr().err


def test_user_errors_print_error_and_hint_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_class_tree(tmp_path / "src", {"Fractured": 4, "Others": 4})
    assert main(["data", "prepare", str(source), "--out", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert "error: unknown class name(s) 'Others'" in err and "hint:" in err and "--positive" in err
    mapped = [
        "data",
        "prepare",
        str(source),
        "--out",
        str(tmp_path / "cache"),
        "--size",
        "16",
        "--negative",
        "others",
    ]
    assert main(mapped) == 0
    assert main(["data", "info", str(tmp_path / "nothing")]) == 2
    assert "not a prepared dataset" in capsys.readouterr().err


def test_synth_writes_a_preparable_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth", str(tmp_path / "synth"), "--n", "12", "--size", "48", "--seed", "3"]) == 0
    assert "wrote 12 synthetic radiographs" in capsys.readouterr().out
    assert len(list((tmp_path / "synth" / "Fractured").iterdir())) == 6
    argv = [
        "data",
        "prepare",
        str(tmp_path / "synth"),
        "--out",
        str(tmp_path / "cache"),
        "--size",
        "16",
        "--strict",
    ]
    assert main(argv) == 0
