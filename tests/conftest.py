"""Fixtures the tests share (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
from helpers import TIGHT, registries_isolated

# The suite compiles a few hundred small JAX programs once each, and XLA's optimisation
# passes are a third of that time (measured: 35 s -> 24 s over nine quick cells); they change
# no derivative the tests check beyond rounding. Set before anything imports JAX; worker
# processes inherit it. Benchmarks and `deqbench run` keep XLA's default.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


@pytest.fixture
def tight():
    return dict(TIGHT)


@pytest.fixture
def isolated_registries():
    """Classes loaded or defined by a test are registered for that test only."""
    with registries_isolated():
        yield
