"""Helpers the verification tests share (imported as `helpers`; conftest holds fixtures only)."""

from __future__ import annotations

import time
from functools import cache

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
