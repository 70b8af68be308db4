"""The base of the JAX strategies: each query a pure function of (theta, x), compiled once.

A JAX strategy answers a query the way a JAX user would: a function of the parameters and
inputs, ``jax.jit``-compiled, called on the problem's JAX copy (``problem.for_backend("jax")``,
the same numbers as the torch instance). Subclasses write one method per query,
``method(self, problem, theta, x) -> dict of arrays``, traced under ``jax.jit``: only
``jax.numpy`` and JAX transforms inside, and every fixed-point solve through
:meth:`JaxStrategy.solve_forward` / :meth:`JaxStrategy.solve_backward`.

**Compilation is its own metric.** :meth:`JaxStrategy.compile` lowers and compiles a query
for a problem instance and returns the seconds it took and the executable's
``memory_analysis()``; :meth:`run` compiles on first use and never again for that instance,
so the harness times runs without compilation (it calls ``compile`` before warming up).

**Solver statistics leave the compiled code through a host callback.** A solve may sit
anywhere under ``jit``, ``vmap``, ``custom_jvp`` rules or nested ``jvp``/``grad``, where
its statistics are tracers that cannot be returned; each solve sends its iterations,
residual and converged flag to the host with ``jax.debug.callback`` when it actually runs,
and :meth:`run` collects them once the computation (and every callback) has finished. A
solve that did not converge is therefore flagged exactly as a torch one is.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

from deqbench.backends import import_jax
from deqbench.queries import QueryResult, UnsupportedQueryError
from deqbench.solvers import SolverStats
from deqbench.strategies.base import Strategy, query_method
from deqbench.tolerances import solver_tol


@dataclass(frozen=True)
class CompileInfo:
    """What compiling one query for one problem instance cost."""

    seconds: float  # lowering and XLA compilation, wall clock
    memory: dict[str, float]  # the executable's memory_analysis(), bytes; empty where unavailable


class JaxStrategy(Strategy):
    """Base of the JAX strategies: one pure, ``jax.jit``-compiled function a query.

    Public as ``deqbench.JaxStrategy`` (and ``deqbench.strategies.JaxStrategy``). A
    subclass sets ``name``, ``supported_queries`` (and ``exact_queries``, ``description``)
    and writes one method per supported query, ``method(self, problem, theta, x)``,
    returning a dict of JAX arrays with the oracle's keys (see
    :class:`~deqbench.strategies.base.Strategy`). The method is traced under ``jax.jit``
    on the problem's JAX copy (``problem.f``, the losses and ``problem.directions`` hold
    JAX arrays there): use ``jax.numpy`` and JAX transforms only, and run every fixed-point
    solve through :meth:`solve_forward` / :meth:`solve_backward`, which send their
    statistics to the host. Import JAX inside methods (``deqbench.backends.import_jax()``),
    never at module level: torch-only runs import every strategy module.
    """

    backend = "jax"

    def __init__(self, **settings: Any):
        super().__init__(**settings)
        # (query, id(problem)) -> (problem, compiled executable); the problem is kept so
        # that its id cannot be reused by another instance while the entry lives.
        self._compiled: dict[tuple[str, int], tuple[Any, Any]] = {}

    # ------------------------------------------------------------------ api
    def run(self, query: str, problem) -> QueryResult:
        reason = self.unsupported_reason(query, problem)
        if reason is not None:
            raise UnsupportedQueryError(reason)
        problem = problem.for_backend("jax")
        return self._call(query, problem, problem.theta)

    def run_with(self, query: str, problem, theta) -> QueryResult:
        """``run`` at other parameter values ``theta`` (a dict of torch tensors with the
        shapes and dtypes of ``problem.theta``): the executable compiled for this instance is
        called with ``theta`` converted, so a training loop passes new parameters every step
        without a recompile, and never reads the instance's own (stale) JAX copy of theta."""
        reason = self.unsupported_reason(query, problem)
        if reason is not None:
            raise UnsupportedQueryError(reason)
        from deqbench.backends import to_jax

        jax_problem = problem.for_backend("jax")
        return self._call(query, jax_problem, to_jax(dict(theta), problem.device))

    def _call(self, query: str, problem, theta) -> QueryResult:
        executable = self._executable(query, problem)
        self.solves = []
        jax = import_jax()
        values = jax.block_until_ready(executable(theta, problem.x))
        jax.effects_barrier()  # every solve's statistics callback has run
        return QueryResult(query, values, list(self.solves))

    def compile(self, query: str, problem) -> CompileInfo:
        """Lower and compile ``query`` for this problem instance (again, if it was)."""
        problem = problem.for_backend("jax")
        jax = import_jax()
        traced = functools.partial(getattr(self, query_method(query)), problem)
        start = time.perf_counter()
        executable = jax.jit(traced).lower(problem.theta, problem.x).compile()
        seconds = time.perf_counter() - start
        self._compiled[(query, id(problem))] = (problem, executable)
        return CompileInfo(seconds, memory_analysis(executable))

    def _executable(self, query: str, problem):
        entry = self._compiled.get((query, id(problem)))
        if entry is None:
            self.compile(query, problem)
            entry = self._compiled[(query, id(problem))]
        return entry[1]

    # -------------------------------------------------------------- solving
    def solve_forward(self, g, z0):
        """z = g(z) from z0 with the forward settings (traceable); statistics to the host."""
        return self._solve("forward", self.f_solver, g, z0, self.f_tol, self.f_max_iter)

    def solve_backward(self, g, z0):
        """A backward (linear or adjoint) solve with the backward settings."""
        return self._solve("backward", self.b_solver, g, z0, self.b_tol, self.b_max_iter)

    def _solve(self, phase, solver, g, z0, tol, max_iter):
        from deqbench import jax_solvers

        tol = solver_tol(str(z0.dtype)) if tol is None else tol
        z, info = jax_solvers.solve(solver, g, z0, tol=tol, max_iter=max_iter)
        self.report(phase, solver, tol, info)
        return z

    def report(self, phase: str, solver: str, tol: float, info) -> None:
        """Send one solve's statistics to the host when the solve runs (see the module doc)."""
        jax = import_jax()
        receive = functools.partial(self._receive, phase, solver, tol)
        stats = jax.lax.stop_gradient((info.iterations, info.nfev, info.residual, info.converged))
        jax.debug.callback(receive, *stats)

    def _receive(self, phase, solver, tol, iterations, nfev, residual, converged) -> None:
        # Under vmap a callback receives a batch of statistics; keep the worst of them.
        import numpy as np

        residual = np.asarray(residual, dtype=float)
        worst = float(residual.max()) if residual.size else 0.0
        self.solves.append(
            SolverStats(
                phase,
                solver,
                int(np.max(iterations)),
                int(np.max(nfev)),
                worst,
                bool(np.all(converged)) and not np.isnan(worst),
                tol,
            )
        )


def memory_analysis(executable) -> dict[str, float]:
    """The compiled executable's memory analysis in bytes, where XLA provides one."""
    try:
        analysis = executable.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return {}
    if analysis is None:
        return {}
    fields = (
        "temp_size_in_bytes",
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "generated_code_size_in_bytes",
    )
    return {name: float(getattr(analysis, name)) for name in fields if hasattr(analysis, name)}
