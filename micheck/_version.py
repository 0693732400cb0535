"""The package version: one place, read by ``micheck.__version__``, ``pyproject.toml``
(setuptools' dynamic version) and ``micheck.definitions.code_version``."""

__version__ = "0.1.0"
