"""Fixtures the tests share (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import pytest
from helpers import TIGHT, registries_isolated


@pytest.fixture
def tight():
    return dict(TIGHT)


@pytest.fixture
def isolated_registries():
    """Classes loaded or defined by a test are registered for that test only."""
    with registries_isolated():
        yield
