"""Helpers the verification tests share (imported as `helpers`; conftest holds fixtures only)."""

from __future__ import annotations

import contextlib
import time
from functools import cache

import pytest

import deqbench

#: Solver settings for verification: tight enough that a correct strategy is within 1e-8.
TIGHT = {"f_tol": 1e-13, "b_tol": 1e-13, "f_max_iter": 3000, "b_max_iter": 3000}


@cache
def problem_instance(name: str, preset: str = "quick", seed: int = 0):
    return deqbench.get_problem(name, preset, seed=seed)


@cache
def oracle_answer(name: str, preset: str, query: str, seed: int = 0):
    from deqbench.harness.oracle import oracle

    return oracle(problem_instance(name, preset, seed), query)


def wait_until(condition, timeout: float = 120.0) -> None:
    """Poll ``condition`` until it holds; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.02)


@contextlib.contextmanager
def registries_isolated():
    """Classes a block loads or defines (a strategy file run by path) stay registered only
    inside it; for module-scoped fixtures, where the `isolated_registries` fixture cannot go."""
    from deqbench.problems.base import PROBLEMS
    from deqbench.strategies.base import STRATEGIES

    with pytest.MonkeyPatch.context() as patch:
        for registry in (STRATEGIES, PROBLEMS):
            registry.discover()
            patch.setattr(registry, "_classes", dict(registry._classes))
        yield
