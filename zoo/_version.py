"""zoo's version, written once: zoo.__version__ and the package metadata read it."""

__version__ = "0.1.0"
