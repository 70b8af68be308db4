"""deqbench: which way of differentiating a deep equilibrium model is right, and what it costs.

The Python API in a few lines::

    import deqbench
    problem = deqbench.get_problem("tanh", m=32)
    result = deqbench.query("analytic", problem, "pinn_grad")
    result.values, result.converged

    rows = deqbench.run("analytic,unrolled", "tanh", "pinn_grad", quick=True)  # a DataFrame
"""

from __future__ import annotations

from deqbench._version import __version__
from deqbench.harness.run.api import run
from deqbench.problems.base import PROBLEMS, FunctionProblem, Problem
from deqbench.queries import (
    QUERIES,
    NotConvergedWarning,
    QueryResult,
    UnsupportedQueryError,
)
from deqbench.strategies import STRATEGIES, AutogradStrategy, JaxStrategy, Strategy
from deqbench.tolerances import solver_tol, verify_tol


def get_strategy(name: str, **settings) -> Strategy:
    """A strategy by registry name, with solver settings (f_tol=..., b_max_iter=...).

    f_tol and b_tol left out (or None) follow each problem's dtype (:func:`solver_tol`:
    1e-10 in float64, 1e-5 in float32), so the same strategy serves both.
    """
    return STRATEGIES.get(name)(**settings)


def get_problem(name: str, preset: str = "default", **kwargs) -> Problem:
    """A problem instance by registry name: a size preset, overrides, seed, dtype, device."""
    return PROBLEMS.get(name)(preset, **kwargs)


def query(strategy: str | Strategy, problem: Problem, name: str) -> QueryResult:
    """Answer one query; warns (NotConvergedWarning) when a solve did not converge.

    A strategy given by name gets default settings: tolerances of the problem's dtype.
    """
    if isinstance(strategy, str):
        strategy = get_strategy(strategy)
    result = strategy.run(name, problem)
    result.warn_if_not_converged()
    return result


__all__ = [
    "__version__",
    "PROBLEMS",
    "AutogradStrategy",
    "QUERIES",
    "STRATEGIES",
    "FunctionProblem",
    "JaxStrategy",
    "NotConvergedWarning",
    "Problem",
    "QueryResult",
    "Strategy",
    "UnsupportedQueryError",
    "get_problem",
    "get_strategy",
    "query",
    "run",
    "solver_tol",
    "verify_tol",
]
