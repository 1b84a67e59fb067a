"""fracture-tune: distributed hyperparameter search for X-ray fracture classifiers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fracture-tune")
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
