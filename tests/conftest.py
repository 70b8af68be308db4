"""Fixtures the tests share (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest
from helpers import TIGHT

from deqbench.problems.base import PROBLEMS
from deqbench.strategies.base import STRATEGIES


@pytest.fixture
def tight():
    return dict(TIGHT)


@pytest.fixture
def isolated_registries(monkeypatch):
    """Classes loaded or defined by a test are registered for that test only."""
    for registry in (STRATEGIES, PROBLEMS):
        registry.discover()
        monkeypatch.setattr(registry, "_classes", dict(registry._classes))
