"""`fracture-tune data prepare | info | synth` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_factory import make_class_tree

from fracture_tune.cli import main
from fracture_tune.data.prepare import load_prepared


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
    assert main(["data", "info", str(tmp_path / "cache")]) == 0  # the cache root: one line per dataset
    listing = capsys.readouterr().out
    assert f"{cache_dir.name}    16 px  12 images (non_fractured 6, fractured 6; train " in listing
    assert f"1 rejected  from {source.resolve()}" in listing


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
    assert "is neither a prepared dataset nor a cache root holding one" in capsys.readouterr().err


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


def _prepare(source: Path, cache: Path, *flags: str) -> list[str]:
    return ["data", "prepare", str(source), "--out", str(cache), "--workers", "1", *flags]


def test_info_on_a_cache_root_lists_every_prepared_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_class_tree(tmp_path / "src", {"Fractured": 5, "Non_fractured": 5})
    cache = tmp_path / "cache"
    assert main(_prepare(source, cache, "--size", "16")) == 0
    assert main(_prepare(source, cache, "--size", "32")) == 0
    (cache / ".0123456789abcdef.tmp-x").mkdir()  # a half-built one is not listed
    capsys.readouterr()
    assert main(["data", "info", str(cache)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"cache root {cache}: 2 prepared datasets"
    assert sorted(line.split()[1] for line in lines[1:3]) == ["16", "32"]
    assert all("10 images (non_fractured 5, fractured 5; train " in line for line in lines[1:3])
    assert lines[3] == f"one in detail: fracture-tune data info {cache / '<key>'}"


def test_info_on_a_folder_that_is_no_cache_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = make_class_tree(tmp_path / "src", {"Fractured": 2, "Non_fractured": 2})
    assert main(["data", "info", str(images)]) == 2
    err = capsys.readouterr().err
    assert f"error: {str(images)!r} is neither a prepared dataset nor a cache root holding one" in err
    assert "hint: pass a dataset folder `data prepare` printed (<out>/<key>) or a cache root" in err


def test_prepare_with_a_search_config_makes_the_cache_that_search_reuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fracture_tune.search.config import load_config
    from fracture_tune.search.run import prepare_search_dataset

    source = make_class_tree(tmp_path / "src", {"Fractured": 8, "Non_fractured": 8})
    cache = tmp_path / "cache"
    assert main(_prepare(source, cache, "--config", "fracatlas-laptop")) == 0
    out = capsys.readouterr().out
    prepared = out.splitlines()[0].removeprefix("prepared (new cache): ")
    assert f"next: fracture-tune search --config fracatlas-laptop --set dataset.path={source}" in out
    # the search of that config on that folder (README: "Your own images") finds the cache
    config = load_config("fracatlas-laptop", {"dataset.path": str(source), "dataset.cache_root": str(cache)})
    searched = prepare_search_dataset(config)
    assert searched.cache_hit and str(searched.cache_dir) == prepared
    assert searched.dataset.arrays.image_size == config.dataset.image_size == 64


def test_flags_given_with_a_config_win_and_the_next_search_sets_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_class_tree(tmp_path / "src", {"Fractured": 8, "Non_fractured": 8})
    config = tmp_path / "mine.yaml"
    config.write_text("dataset:\n  image_size: 24\n  split_seed: 3\n  test_fraction: 0.2\n")
    cache = tmp_path / "cache"
    assert main(_prepare(source, cache, "--config", str(config), "--size", "16")) == 0
    out = capsys.readouterr().out
    assert f"dataset.path={source} --set dataset.image_size=16 --set dataset.cache_root={cache}\n" in out
    params = load_prepared(out.splitlines()[0].removeprefix("prepared (new cache): ")).params
    assert (params["image_size"], params["seed"], params["test_fraction"]) == (16, 3, 0.2)


def test_prepare_without_a_config_says_which_dataset_settings_reuse_the_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_class_tree(tmp_path / "src", {"Fractured": 4, "Non_fractured": 4})
    assert main(_prepare(source, tmp_path / "cache", "--size", "16", "--test", "0.2")) == 0
    out = capsys.readouterr().out
    assert (
        "a search reuses this cache when its config has dataset image_size: 16, val_fraction: 0.15, "
        f"test_fraction: 0.2, split_seed: 0, cache_root: {tmp_path / 'cache'}"
    ) in out


def test_a_class_with_too_few_images_is_named_by_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = make_class_tree(tmp_path / "src", {"Broken": 2, "Normal": 8})
    assert main(_prepare(source, tmp_path / "cache", "--size", "16")) == 2
    err = capsys.readouterr().err
    assert "error: class 'fractured' (folder 'Broken') has 2 independent image group(s) but 3 splits" in err
    assert "hint:" in err
