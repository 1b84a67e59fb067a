"""What records and `--version` name: the installed distribution's version."""

from __future__ import annotations

from importlib.metadata import version

import pytest

import fracture_tune
from fracture_tune.cli import main
from fracture_tune.version import PACKAGE_DIR, package_version


def test_the_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    assert package_version() == version("fracture-tune") == fracture_tune.__version__
    assert (PACKAGE_DIR / "version.py").is_file()
    try:
        main(["--version"])
    except SystemExit as exit:
        assert exit.code == 0
    assert capsys.readouterr().out.strip() == f"fracture-tune {package_version()}"
