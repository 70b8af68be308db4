"""The Python API's lookups: a strategy or a problem by registry name, and one query answered.

``deqbench/__init__.py`` re-exports these; code inside the package imports them from here,
so that nothing in the package imports the package's public face back.
"""

from __future__ import annotations

from deqbench.problems.base import PROBLEMS, Problem
from deqbench.queries import QueryResult
from deqbench.strategies.base import STRATEGIES, Strategy


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
