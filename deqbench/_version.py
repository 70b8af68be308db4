"""``deqbench.__version__``, from the installed distribution (pyproject.toml is its one source).

A module of its own that imports nothing of deqbench, so the harness (run metadata, the
command's ``--version``) can read the version without importing the package's public face.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deqbench")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
