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
from deqbench.api import get_problem, get_strategy, query
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
