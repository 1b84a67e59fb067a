"""The README's "From Python" block, run as printed in a fresh process. The reader's own inputs are defined
first the way a reader has them: ``scan1.png``, a folder ``xrays/``, a PIL image and a uint8 array."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT, cli_env

pytestmark = [pytest.mark.integration, pytest.mark.readme]

READERS_INPUTS = textwrap.dedent(
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    uint8_array = rng.integers(0, 255, (80, 64), dtype=np.uint8)
    pil_image = Image.fromarray(uint8_array)
    pil_image.save("scan1.png")
    import os
    os.makedirs("xrays", exist_ok=True)
    Image.fromarray(255 - uint8_array).save("xrays/scan2.png")
    """
)


def test_the_from_python_block_runs_as_printed(tmp_path: Path) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## From Python", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"^```python\n(.*?)^```", section, re.M | re.S)
    # The block ends with the prediction a notebook would show: keep it, and print what each row got.
    lines = block.rstrip().splitlines()
    last = lines[-1].split("  #", 1)[0]
    shown = "\n".join([*lines[:-1], f"shown = {last}", 'print("STATUS", list(shown["status"]))'])
    script = tmp_path / "readme_block.py"
    script.write_text(READERS_INPUTS + "\n" + shown + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert "STATUS ['ok', 'ok', 'ok', 'ok']" in done.stdout, done.stdout[-2000:]
