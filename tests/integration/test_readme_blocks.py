"""The README's "Your own images" block, run as printed on a folder of images: prepare, search with the
laptop config, show, retrain, predict. The reader's own parts are filled in the way a reader fills them in:
``IMAGES`` names their folder, ``scans/*.jpg`` their new images, ``<version>`` the version retrain printed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT, cli_env, fracture_tune

pytestmark = [pytest.mark.integration, pytest.mark.readme]


def _own_images_block() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Your own images", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```bash\n(.*?)^```", section, re.M | re.S)
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_your_own_images_block_runs_as_printed(tmp_path: Path) -> None:
    lines = _own_images_block()
    assert lines[0].startswith("IMAGES=") and [line.split()[1] for line in lines[1:]] == [
        "data",
        "search",
        "search",
        "retrain",
        "predict",
    ]
    images = tmp_path / "xrays"
    made = fracture_tune("data", "synth", str(images), "--n", "120", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    scans = tmp_path / "scans"
    scans.mkdir()
    for index, source in enumerate(sorted(images.rglob("*.png"))[:3]):
        from PIL import Image

        Image.open(source).convert("RGB").save(scans / f"scan{index}.jpg", quality=90)
    env = cli_env(IMAGES=str(images), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    version = None
    for line in lines[1:]:
        if version is not None:
            line = line.replace("<version>", version)
        done = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, (
            f"`{line}` exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
        registered = re.search(r"registered models:/fracture-classifier/(\d+)", done.stdout)
        version = registered.group(1) if registered else version
    predictions = (tmp_path / "preds.csv").read_text().splitlines()
    assert len(predictions) == 4 and "probability" in predictions[0]
