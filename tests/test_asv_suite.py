"""The asv suite (top-level ``benchmarks/``) against the harness matrix it is built from.

The suite's parameters must be the matrix's axes, it must skip exactly the unsupported
cells, and one benchmark of each kind, called directly, must return sane values.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest

from deqbench.harness.oracle import CACHE_ENV
from deqbench.harness.run import build_matrix, own_strategy_names, problem_names, query_names

REPO_ROOT = Path(__file__).resolve().parents[1]
# asv imports the suite as the top-level package `benchmarks`, from the repository root.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import common, queries  # noqa: E402

MATRIX_CLASSES = [
    queries.QueryTime,
    queries.QueryPeakMemory,
    queries.QueryAccuracy,
    queries.QuerySavedTensors,
    queries.QuerySolverIterations,
    queries.QueryCompileTime,
]

#: What asv itself must discover: benchmark name -> (kind, unit).
EXPECTED_BENCHMARKS = {
    "queries.QueryTime.time_query": ("time", "seconds"),
    "queries.QueryPeakMemory.peakmem_query": ("peakmemory", "bytes"),
    "queries.QueryAccuracy.track_relative_error": ("track", "relative error"),
    "queries.QuerySavedTensors.track_saved_tensor_bytes": ("track", "bytes"),
    "queries.QuerySolverIterations.track_forward_iterations": ("track", "iterations"),
    "queries.QueryCompileTime.track_compile_time": ("track", "seconds"),
    "queries.QuerySolverIterations.track_backward_iterations": ("track", "iterations"),
    "speed.AnalyticSpeed.track_analytic_over_forward_solve": ("track", "ratio"),
    "speed.AnalyticSpeed.track_analytic_over_fastest_torch_peer": ("track", "ratio"),
    "speed.AnalyticSpeed.track_jax_analytic_over_fastest_jax_peer": ("track", "ratio"),
}


def key(cell) -> tuple[str, str, str]:
    return (cell.strategy, cell.problem, cell.query)


# ------------------------------------------------------------ the matrix as params
@pytest.mark.parametrize("benchmark_class", MATRIX_CLASSES, ids=lambda c: c.__name__)
def test_params_are_the_harness_matrix_axes(benchmark_class):
    assert benchmark_class.param_names == ["strategy", "problem", "query"]
    assert benchmark_class.params == [own_strategy_names(), problem_names(), query_names()]


def test_param_combinations_are_the_matrix_cells():
    combinations = list(itertools.product(*common.PARAMS))
    assert combinations == [key(cell) for cell in build_matrix(own_strategy_names())]


def test_skipped_combinations_are_exactly_the_unsupported_cells():
    runnable = set()
    for combination in itertools.product(*common.PARAMS):
        try:
            common.prepared_cell(*combination)
        except NotImplementedError:
            continue
        runnable.add(combination)
    assert runnable == {key(cell) for cell in build_matrix(own_strategy_names()) if cell.supported}


@pytest.mark.parametrize("benchmark_class", MATRIX_CLASSES, ids=lambda c: c.__name__)
def test_setup_skips_an_unsupported_cell(benchmark_class):
    # a cell the strategy refuses (a problem's own refusals have reasons of their own)
    unsupported = next(
        key(cell)
        for cell in build_matrix(own_strategy_names())
        if not cell.supported and cell.unsupported.startswith("strategy")
    )
    setup_cache_argument = () if benchmark_class is not queries.QueryAccuracy else ({},)
    with pytest.raises(NotImplementedError, match="does not support"):
        benchmark_class().setup(*setup_cache_argument, *unsupported)


def test_asv_discovers_every_benchmark_with_its_kind_and_unit():
    from asv_runner.discovery import disc_benchmarks

    discovered = {b.name: b for b in disc_benchmarks(str(REPO_ROOT / "benchmarks"))}
    assert {name: (b.type, b.unit) for name, b in discovered.items()} == EXPECTED_BENCHMARKS
    quoted_axes = [[repr(value) for value in axis] for axis in common.PARAMS]
    assert all(b.params == quoted_axes for name, b in discovered.items() if name.startswith("queries."))


# ----------------------------------------------------- one benchmark of each kind
def prepared(benchmark_class, *cell):
    benchmark = benchmark_class()
    benchmark.setup(*cell)
    return benchmark


def test_time_query_runs_the_query():
    cell = ("analytic", "tanh", "grad")
    benchmark = prepared(queries.QueryTime, *cell)
    assert benchmark.cell.warmed_up
    start = time.perf_counter()
    benchmark.time_query(*cell)
    assert time.perf_counter() - start > 0


def test_peakmem_query_runs():
    cell = ("unrolled", "tanh", "jvp")
    assert prepared(queries.QueryPeakMemory, *cell).peakmem_query(*cell) is None


@pytest.fixture
def references(tmp_path, monkeypatch):
    """Oracle answers for two tanh cells, from a cache of the test's own."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    cells = [("analytic", "tanh", "grad"), ("analytic-seed", "tanh", "jvp2")]
    return {cell: common.oracle_reference(*cell) for cell in cells}


def relative_error(references, *cell) -> float:
    benchmark = queries.QueryAccuracy()
    benchmark.setup(references, *cell)
    return benchmark.track_relative_error(references, *cell)


def test_relative_error_is_small_where_the_strategy_is_exact(references):
    assert relative_error(references, "analytic", "tanh", "grad") <= 1e-6


def test_relative_error_is_large_for_analytic_seed_second_order_on_tanh(references):
    # analytic-seed drops the curvature term of the second derivative: not a rounding error.
    assert relative_error(references, "analytic-seed", "tanh", "jvp2") > 0.1


@pytest.mark.parametrize("strategy", ["analytic", "unrolled"])
def test_saved_tensor_bytes_where_autograd_saves(strategy):
    cell = (strategy, "tanh", "grad")
    assert prepared(queries.QuerySavedTensors, *cell).track_saved_tensor_bytes(*cell) > 0


def test_no_saved_tensor_bytes_for_a_forward_solve():
    cell = ("analytic", "tanh", "forward")
    assert prepared(queries.QuerySavedTensors, *cell).track_saved_tensor_bytes(*cell) == 0


def test_compile_time_of_a_jax_cell_and_none_for_torch():
    cell = ("jax-analytic", "tanh", "grad")
    assert prepared(queries.QueryCompileTime, *cell).track_compile_time(*cell) > 0
    with pytest.raises(NotImplementedError, match="compile nothing"):
        queries.QueryCompileTime().setup("analytic", "tanh", "grad")
    with pytest.raises(NotImplementedError, match="torch measure"):
        queries.QuerySavedTensors().setup(*cell)


def test_solver_iterations():
    implicit = ("analytic", "tanh", "grad")
    unrolled = ("unrolled", "tanh", "grad")
    analytic = prepared(queries.QuerySolverIterations, *implicit)
    through_iterations = prepared(queries.QuerySolverIterations, *unrolled)
    assert analytic.track_forward_iterations(*implicit) > 0
    assert analytic.track_backward_iterations(*implicit) > 0
    assert through_iterations.track_forward_iterations(*unrolled) > 0
    assert through_iterations.track_backward_iterations(*unrolled) == 0  # autograd, no solve


def test_importing_the_suite_builds_no_problem():
    """asv imports the suite in every benchmark process: planning is lazy, per cell."""
    import subprocess

    code = (
        "import deqbench.problems.base as base\n"
        "def refuse(*args, **kwargs): raise SystemExit('a problem was built at import')\n"
        "base.Problem.__init__ = refuse\n"
        "import benchmarks.common, benchmarks.queries\n"
        "print(len(benchmarks.common.PARAMS[0]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
