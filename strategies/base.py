"""The Strategy interface: one way of computing a fixed point's derivatives.

A strategy declares its ``name``, ``backend``, the queries it supports and those it claims
to answer exactly, and carries the forward and backward solver settings (the torchdeq
names: ``f_solver``/``b_solver``, ``f_tol``/``b_tol``, ``f_max_iter``/``b_max_iter``).
Each query is a method of the same name taking a problem and returning a dict of tensors;
:meth:`Strategy.run` wraps it with the statistics of every solve it made. The contract a
subclass implements is :class:`Strategy`'s docstring; defining a class that breaks it is a
TypeError at once, not a surprise in the middle of a run.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from deqbench.problems.base import Problem
from deqbench.queries import QUERIES, QueryResult, UnsupportedQueryError, check_query_name
from deqbench.registry import Registry
from deqbench.solvers import SOLVERS, Solution, SolverStats, solve
from deqbench.tolerances import solver_tol

STRATEGIES: Registry[Strategy] = Registry("strategy", "deqbench.strategies")


class Strategy:
    """Base class of every strategy. A subclass that sets ``name`` is registered.

    **Required** (checked when the class is defined; a TypeError names what is wrong):

    - ``name`` (str): the registry name, unique (``deqbench run --strategy NAME``). A class
      without one is an abstract helper and is neither checked nor registered.
    - ``supported_queries`` (frozenset of query names, see ``deqbench.QUERIES``): what the
      strategy can answer; the others are recorded "unsupported".
    - One method per supported query, named as the query (``forward``, ``jvp``, ``jvp2``,
      ``grad``, ``pinn_grad``, ``pinn2_grad``, ``hessian``): ``method(self, problem)``
      returning a dict of tensors with the oracle's keys and shapes (``forward``:
      ``z_star`` and ``output``; ``jvp``: ``dz_dt``; ``jvp2``: ``d2z_dt2``; ``hessian``:
      ``d2z_dx2``; the gradients: one entry per name in ``problem.theta``). Inherited
      methods count (``AutogradStrategy`` defines them all for its subclasses).

    **Optional:**

    - ``exact_queries`` (a subset of ``supported_queries``, default none): the queries whose
      answers the strategy claims are exact to solver tolerance. Only these can make a run
      fail; the others are measured and reported, right or wrong, but not promised.
    - ``backend`` ("torch"), ``description`` (one line for ``deqbench list``).
    - ``peer`` (str, default None): the library and version a strategy runs ("torchdeq
      0.1.0") when it measures another library's code rather than deqbench's own; such a
      strategy is left out of the full verification matrix (tests/test_peers.py checks it).
    - ``refusals`` (query -> reason): why a query outside ``supported_queries`` is refused,
      where there is more to say than "does not support" (a peer: the library's own error
      message for that composition).
    - ``default_f_solver`` / ``default_b_solver`` ("anderson"; any name in
      ``deqbench.solvers.SOLVERS``): what the forward and the backward (linear or adjoint)
      solves use unless the user picks a solver.
    - ``unsupported_reason(self, query, problem)``: override (calling ``super()``) to refuse a
      supported query on some problems, e.g. one too large for a dense formula; return a
      one-line reason, or None.

    **Solving.** Run every fixed-point solve through ``self.solve_forward(g, z0)`` (z* of the
    layer) or ``self.solve_backward(g, z0)`` (any linear or adjoint solve): they use the
    user's settings and append each solve's :class:`~deqbench.solvers.SolverStats` to
    ``self.solves``, which :meth:`run` clears before the query and returns with its
    answer, so that a solve that did not converge is flagged, never silent. Code that must
    keep the statistics itself (a layer used outside :meth:`run`) calls
    ``forward_solution`` / ``backward_solution``, which record nothing.

    **Settings** (keyword arguments of the constructor): ``f_solver``/``b_solver``,
    ``f_tol``/``b_tol`` (None, the default: the tolerance of the problem's dtype,
    :func:`deqbench.tolerances.solver_tol`), ``f_max_iter``/``b_max_iter``.
    """

    name: ClassVar[str]
    backend: ClassVar[str] = "torch"
    description: ClassVar[str] = ""
    supported_queries: ClassVar[frozenset[str]] = frozenset()
    #: Queries whose answers the strategy claims are exact (to solver tolerance). Anything
    #: else it supports is measured and reported, right or wrong, but not promised.
    exact_queries: ClassVar[frozenset[str]] = frozenset()
    default_f_solver: ClassVar[str] = "anderson"
    default_b_solver: ClassVar[str] = "anderson"
    #: Another library's name and version when the strategy runs its code; None: deqbench's own.
    peer: ClassVar[str | None] = None
    #: Why each query outside supported_queries is refused, where there is more to say.
    refusals: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # abstract helpers set no name: unchecked, unregistered
            check_contract(cls)
            STRATEGIES.add(cls)

    def __init__(
        self,
        *,
        f_solver: str | None = None,
        b_solver: str | None = None,
        f_tol: float | None = None,
        b_tol: float | None = None,
        f_max_iter: int = 500,
        b_max_iter: int = 500,
    ):
        self.f_solver = f_solver or self.default_f_solver
        self.b_solver = b_solver or self.default_b_solver
        for solver in (self.f_solver, self.b_solver):
            if solver not in SOLVERS:
                raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
        #: None ("auto"): each solve stops at the tolerance of its dtype, the problem's
        #: (deqbench.tolerances.solver_tol), so one strategy serves float32 and float64.
        self.f_tol, self.b_tol = checked_tolerance("f_tol", f_tol), checked_tolerance("b_tol", b_tol)
        self.f_max_iter, self.b_max_iter = int(f_max_iter), int(b_max_iter)
        self.solves: list[SolverStats] = []

    # ------------------------------------------------------------------ api
    def unsupported_reason(self, query: str, problem: Problem) -> str | None:
        refusal = self.refusal(query)
        if refusal is not None:
            return refusal
        return problem.backend_unavailable_reason(self.backend) or problem.unsupported_reason(query)

    @classmethod
    def refusal(cls, query: str) -> str | None:
        """Why the strategy never answers ``query`` whatever the problem, or None (decided
        from the class alone: a run's plan uses it without building anything)."""
        check_query_name(query)
        if query in cls.supported_queries:
            return None
        return cls.refusals.get(query, f"strategy {cls.name!r} does not support query {query!r}")

    def run(self, query: str, problem: Problem) -> QueryResult:
        """Answer one query on one problem instance."""
        reason = self.unsupported_reason(query, problem)
        if reason is not None:
            raise UnsupportedQueryError(reason)
        self.solves = []
        values = getattr(self, query_method(query))(problem)
        return QueryResult(query, values, list(self.solves))

    # -------------------------------------------------------------- solving
    def solve_forward(self, g, z0: torch.Tensor) -> torch.Tensor:
        """z = g(z) from z0 with the forward settings; its statistics go to ``self.solves``."""
        return self._record(self.forward_solution(g, z0))

    def solve_backward(self, g, z0: torch.Tensor) -> torch.Tensor:
        """A backward (linear or adjoint) solve; its statistics go to ``self.solves``."""
        return self._record(self.backward_solution(g, z0))

    def forward_solution(self, g, z0: torch.Tensor) -> Solution:
        """The forward solve and its statistics, recorded nowhere (the caller keeps them)."""
        return solve(self.f_solver, g, z0, tol=self.f_tol, max_iter=self.f_max_iter, phase="forward")

    def backward_solution(self, g, z0: torch.Tensor) -> Solution:
        return solve(self.b_solver, g, z0, tol=self.b_tol, max_iter=self.b_max_iter, phase="backward")

    def _record(self, solution: Solution) -> torch.Tensor:
        self.solves.append(solution.stats)
        return solution.z

    def tolerances(self, dtype: torch.dtype | str) -> dict[str, float]:
        """The f_tol and b_tol the solves of a problem in ``dtype`` stop at."""
        return {
            "f_tol": solver_tol(dtype) if self.f_tol is None else self.f_tol,
            "b_tol": solver_tol(dtype) if self.b_tol is None else self.b_tol,
        }

    def settings(self, dtype: torch.dtype | str | None = None) -> dict[str, object]:
        """The solver settings; a tolerance left to the dtype reads "auto", or, given a
        ``dtype``, the value it takes there."""
        if dtype is None:
            tolerances = {"f_tol": _auto(self.f_tol), "b_tol": _auto(self.b_tol)}
        else:
            tolerances = self.tolerances(dtype)
        return {
            "f_solver": self.f_solver,
            "b_solver": self.b_solver,
            **tolerances,
            "f_max_iter": self.f_max_iter,
            "b_max_iter": self.b_max_iter,
        }

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"{type(self).__name__}({knobs})"


def checked_tolerance(name: str, tol: float | None) -> float | None:
    """A solver tolerance as given: None (the dtype's), or a finite number >= 0.

    Zero is allowed on purpose: it never stops early, so a solve runs exactly its
    ``max_iter`` steps (what the memory tests use to fix iteration counts).
    """
    if tol is None:
        return None
    try:
        value = float(tol)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(tol, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"{name} must be a finite number >= 0, or None for the dtype's tolerance; got {tol!r}"
        )
    return value


def _auto(tol: float | None) -> float | str:
    return "auto" if tol is None else tol


# ---------------------------------------------------------------- the contract
def query_method(query: str) -> str:
    """The name of the method that answers ``query``."""
    return query.replace("-", "_")


def check_contract(cls: type[Strategy]) -> None:
    """TypeError, naming the class, if its declarations and its methods disagree."""
    supported, exact = frozenset(cls.supported_queries), frozenset(cls.exact_queries)
    unknown = (supported | exact) - set(QUERIES)
    if unknown:
        raise TypeError(
            f"{cls.__name__} names unknown queries {sorted(unknown)}; known: {', '.join(QUERIES)}"
        )
    unsupported_exact = exact - supported
    if unsupported_exact:
        raise TypeError(
            f"{cls.__name__} claims exact_queries {sorted(unsupported_exact)} that are not in its "
            "supported_queries"
        )
    missing = [
        query_method(q)
        for q in QUERIES
        if q in supported and not callable(getattr(cls, query_method(q), None))
    ]
    if missing:
        signatures = ", ".join(f"{method}(self, problem)" for method in missing)
        raise TypeError(f"{cls.__name__} supports queries it has no method for: define {signatures}")
