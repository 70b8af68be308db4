"""Fixtures the tests share (plain helpers live in tests/helpers.py)."""

from __future__ import annotations

import os

import pytest
import threadpoolctl
import torch
from helpers import TIGHT, registries_isolated

# The suite compiles a few hundred small JAX programs once each, and XLA's optimisation
# passes are a third of that time (measured: 35 s -> 24 s over nine quick cells); they change
# no derivative the tests check beyond rounding. Set before anything imports JAX; worker
# processes inherit it. Benchmarks and `deqbench run` keep XLA's default.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


BLAS_VARIABLE = "OPENBLAS_NUM_THREADS"


@pytest.fixture(autouse=True)
def threads_restored():
    """A command run in this process with ``--threads 1`` keeps it to one CPU, one torch
    thread and one BLAS thread (``measure.use_threads``); the next test gets the process's
    own back."""
    threads = torch.get_num_threads()
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    blas_variable = os.environ.get(BLAS_VARIABLE)
    with threadpoolctl.threadpool_limits(limits=None):  # restores the pools' sizes on exit
        yield
    torch.set_num_threads(threads)
    if blas_variable is None:
        os.environ.pop(BLAS_VARIABLE, None)
    else:
        os.environ[BLAS_VARIABLE] = blas_variable
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


@pytest.fixture
def tight():
    return dict(TIGHT)


@pytest.fixture
def isolated_registries():
    """Classes loaded or defined by a test are registered for that test only."""
    with registries_isolated():
        yield
