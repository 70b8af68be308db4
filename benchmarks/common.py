"""What every benchmark of the suite shares: the harness's matrix and quick profile, one
prepared cell per benchmark process, and the oracle's answers.

The suite measures what ``deqbench run --quick`` measures, the same way: its parameters are
the axes of :func:`deqbench.harness.matrix.build_matrix` (through the harness's plan), cells
are built by the harness worker's :func:`~deqbench.harness.worker.build` with the quick
profile's solver settings, and answers are checked against the harness's cached oracle.

asv runs every (benchmark, strategy, problem, query) combination in a process of its own and
(asv_runner 0.3) calls ``setup`` again before every timed sample. What is expensive in a
set-up is therefore done once per process: building the cell (:func:`prepared_cell`) and,
for timings, the warm-up run that pays torch's lazy initialisation
(:meth:`PreparedCell.warm_up`). The oracle's answers are computed once per asv run, in
``setup_cache``, and once per machine, through the harness's disk cache.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from deqbench.harness import runner, worker
from deqbench.harness.accuracy import relative_errors
from deqbench.harness.matrix import Cell
from deqbench.harness.oracle_cache import OracleCache
from deqbench.harness.runner import PlannedCell
from deqbench.problems.base import Problem
from deqbench.queries import QueryResult
from deqbench.strategies.base import Strategy

CellKey = tuple[str, str, str]  # (strategy, problem, query), the order of asv's params

#: The harness's quick profile, built exactly as ``deqbench run --quick`` builds it: the
#: "quick" size preset, float64 on the CPU, seed 0, the solver tolerances and caps.
QUICK = runner.make_settings("all", "all", "all", quick=True)

#: Every cell of the matrix (supported or not), with the spec the harness runs it with.
PLAN: dict[CellKey, PlannedCell] = {
    (p.cell.strategy, p.cell.problem, p.cell.query): p for p in runner.plan(QUICK)
}

#: Relative errors below this are reported as this. Two decades under the harness's
#: pass/fail tolerance, an error reflects the solver tolerance and rounding, which shift
#: with any reordering of floating-point work; left raw, a move from 1e-11 to 5e-11 would
#: read as a fivefold regression in ``asv compare``.
RELATIVE_ERROR_FLOOR = runner.VERIFY_TOL[QUICK.dtype] / 100


PARAM_NAMES = ["strategy", "problem", "query"]


def matrix_axes(cells: Iterable[Cell]) -> list[list[str]]:
    """[strategies, problems, queries], each in the matrix's own order."""
    cells = list(cells)
    return [list(dict.fromkeys(getattr(cell, axis) for cell in cells)) for axis in PARAM_NAMES]


PARAMS = matrix_axes(planned.cell for planned in PLAN.values())


def preload_lazy_modules() -> None:
    """Import now what torch would import on a first ``torch.func`` call (seconds' worth).

    asv's forkserver imports the suite once and forks every benchmark process from it, so
    the import is paid once per asv run instead of once per benchmark process. (The harness
    worker server preloads the same list for the same reason.)
    """
    for name in worker.PRELOAD_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


preload_lazy_modules()


@dataclass
class PreparedCell:
    """A supported cell, built: ``run()`` answers its query once."""

    planned: PlannedCell
    strategy: Strategy
    problem: Problem
    warmed_up: bool = False

    @property
    def query(self) -> str:
        return self.planned.cell.query

    def run(self) -> QueryResult:
        result = self.strategy.run(self.query, self.problem)
        worker.synchronize(self.problem.device)  # on CUDA, the query ends when its kernels do
        return result

    def warm_up(self) -> None:
        """The harness's warm-up runs, once per process: the first run pays torch's lazy
        initialisation and first allocations, which a timing must not include."""
        if not self.warmed_up:
            for _ in range(self.planned.spec.warmup):
                self.run()
            self.warmed_up = True


def supported_cell(strategy: str, problem: str, query: str) -> PlannedCell:
    """The planned cell; ``NotImplementedError`` (asv's "skip") if it cannot run."""
    planned = PLAN[(strategy, problem, query)]
    if not planned.cell.supported:
        raise NotImplementedError(planned.cell.unsupported)
    return planned


@functools.cache
def prepared_cell(strategy: str, problem: str, query: str) -> PreparedCell:
    """The cell built as the harness worker builds it (its problem instance, its solver
    settings), once per process: asv calls ``setup`` again before every sample."""
    planned = supported_cell(strategy, problem, query)
    built_strategy, built_problem = worker.build(planned.spec)
    return PreparedCell(planned, built_strategy, built_problem)


def oracle_references(keys: Iterable[CellKey] | None = None) -> dict[CellKey, dict[str, torch.Tensor]]:
    """The oracle's answers (float64, CPU) for these cells; all supported cells by default.

    Through the harness's verifier and disk cache: the same instances and the same cached
    answers as ``deqbench run``, so the oracle runs once per machine, not once per asv run.
    """
    if keys is None:
        keys = [key for key, planned in PLAN.items() if planned.cell.supported]
    verifier = runner.Verifier(QUICK, OracleCache())
    return {key: verifier.answer(PLAN[key]).values for key in keys}


def max_relative_error(values: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """The worst output's relative error, floored at :data:`RELATIVE_ERROR_FLOOR`."""
    return max(*relative_errors(values, reference).values(), RELATIVE_ERROR_FLOOR)
