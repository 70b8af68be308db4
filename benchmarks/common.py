"""What every benchmark of the suite shares: the harness's matrix and quick profile, one
prepared cell per benchmark process, and the oracle's answers.

The suite measures what ``deqbench run --quick`` measures, the same way, through the
harness's small stable entry points: the matrix's axes for the parameters
(:func:`deqbench.harness.run.matrix.build_matrix`, names only, so importing the suite builds no
problem), :func:`~deqbench.harness.run.matrix.quick_spec` for a cell's spec, and
:class:`~deqbench.harness.worker.cell.PreparedCell` to build and run it; answers are checked
against the harness's cached oracle.

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
import itertools

import torch

from deqbench.harness.oracle import OracleCache, relative_errors
from deqbench.harness.run import own_strategy_names, problem_names, query_names, quick_spec
from deqbench.harness.worker import PreparedCell, build_problem, server
from deqbench.tolerances import verify_tol

CellKey = tuple[str, str, str]  # (strategy, problem, query), the order of asv's params

#: Relative errors below this are reported as this. Two decades under the harness's
#: pass/fail tolerance, an error reflects the solver tolerance and rounding, which shift
#: with any reordering of floating-point work; left raw, a move from 1e-11 to 5e-11 would
#: read as a fivefold regression in ``asv compare``.
RELATIVE_ERROR_FLOOR = verify_tol("float64") / 100

PARAM_NAMES = ["strategy", "problem", "query"]
#: The matrix's axes, from the registries alone (no problem is built at import). deqbench's
#: own strategies only: asv tracks this project commit by commit, and the peers run pinned
#: versions of other libraries that no commit here changes (each optimistix cell compiles for
#: seconds, six benchmarks a cell); they are compared side by side by `make bench-peers`.
PARAMS = [own_strategy_names(), problem_names(), query_names()]


def preload_lazy_modules() -> None:
    """Import now what torch would import on a first ``torch.func`` call (seconds' worth).

    asv's forkserver imports the suite once and forks every benchmark process from it, so
    the import is paid once per asv run instead of once per benchmark process. (The harness
    worker server preloads the same list for the same reason.)
    """
    for name in server.PRELOAD_MODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


preload_lazy_modules()


@functools.cache
def prepared_cell(strategy: str, problem: str, query: str) -> PreparedCell:
    """The cell built as ``deqbench run --quick`` builds it, once per process (asv calls
    ``setup`` again before every sample); ``NotImplementedError`` (asv's "skip") if the
    strategy or the problem cannot pose the query."""
    cell = PreparedCell.build(quick_spec(strategy, problem, query))
    reason = cell.unsupported_reason()
    if reason is not None:
        raise NotImplementedError(reason)
    return cell


def oracle_reference(strategy: str, problem: str, query: str) -> dict[str, torch.Tensor]:
    """The oracle's answer (float64, CPU) for a cell, through the harness's disk cache."""
    spec = quick_spec(strategy, problem, query)
    return OracleCache().answer(build_problem(spec, device="cpu"), query).values


def oracle_references() -> dict[CellKey, dict[str, torch.Tensor]]:
    """The oracle's answers for every supported cell of the matrix."""
    references = {}
    for key in itertools.product(*PARAMS):
        with contextlib.suppress(NotImplementedError):
            prepared_cell(*key)
            references[key] = oracle_reference(*key)
    return references


def max_relative_error(values: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    """The worst output's relative error, floored at :data:`RELATIVE_ERROR_FLOOR`."""
    return max(*relative_errors(values, reference).values(), RELATIVE_ERROR_FLOOR)
