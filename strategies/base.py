"""The Strategy interface: one way of computing a fixed point's derivatives.

A strategy declares its ``name``, ``backend``, the queries it supports and those it claims
to answer exactly, and carries the forward and backward solver settings (the torchdeq
names: ``f_solver``/``b_solver``, ``f_tol``/``b_tol``, ``f_max_iter``/``b_max_iter``).
Each query is a method of the same name taking a problem and returning a dict of tensors;
:meth:`Strategy.run` wraps it with the statistics of every solve it made.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from deqbench.problems.base import Problem
from deqbench.queries import QUERIES, QueryResult, UnsupportedQueryError, check_query_name
from deqbench.registry import Registry
from deqbench.solvers import SOLVERS, SolverStats, solve

STRATEGIES: Registry[Strategy] = Registry("strategy", "deqbench.strategies")


class Strategy:
    name: ClassVar[str]
    backend: ClassVar[str] = "torch"
    description: ClassVar[str] = ""
    supported_queries: ClassVar[frozenset[str]] = frozenset()
    #: Queries whose answers the strategy claims are exact (to solver tolerance). Anything
    #: else it supports is measured and reported, right or wrong, but not promised.
    exact_queries: ClassVar[frozenset[str]] = frozenset()
    default_f_solver: ClassVar[str] = "anderson"
    default_b_solver: ClassVar[str] = "anderson"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            unknown = (cls.supported_queries | cls.exact_queries) - set(QUERIES)
            if unknown:
                raise TypeError(f"{cls.__name__} names unknown queries {sorted(unknown)}")
            STRATEGIES.add(cls)

    def __init__(
        self,
        *,
        f_solver: str | None = None,
        b_solver: str | None = None,
        f_tol: float = 1e-10,
        b_tol: float = 1e-10,
        f_max_iter: int = 500,
        b_max_iter: int = 500,
    ):
        self.f_solver = f_solver or self.default_f_solver
        self.b_solver = b_solver or self.default_b_solver
        for solver in (self.f_solver, self.b_solver):
            if solver not in SOLVERS:
                raise ValueError(f"unknown solver {solver!r}; known: {', '.join(SOLVERS)}")
        self.f_tol, self.b_tol = float(f_tol), float(b_tol)
        self.f_max_iter, self.b_max_iter = int(f_max_iter), int(b_max_iter)
        self.solves: list[SolverStats] = []

    # ------------------------------------------------------------------ api
    def unsupported_reason(self, query: str, problem: Problem) -> str | None:
        check_query_name(query)
        if query not in self.supported_queries:
            return f"strategy {self.name!r} does not support query {query!r}"
        return problem.unsupported_reason(query)

    def run(self, query: str, problem: Problem) -> QueryResult:
        """Answer one query on one problem instance."""
        reason = self.unsupported_reason(query, problem)
        if reason is not None:
            raise UnsupportedQueryError(reason)
        self.solves = []
        values = getattr(self, query.replace("-", "_"))(problem)
        return QueryResult(query, values, list(self.solves))

    # -------------------------------------------------------------- solving
    def solve_forward(self, g, z0: torch.Tensor) -> torch.Tensor:
        return self._solve(self.f_solver, g, z0, self.f_tol, self.f_max_iter, "forward")

    def solve_backward(self, g, z0: torch.Tensor) -> torch.Tensor:
        return self._solve(self.b_solver, g, z0, self.b_tol, self.b_max_iter, "backward")

    def _solve(self, solver, g, z0, tol, max_iter, phase) -> torch.Tensor:
        solution = solve(solver, g, z0, tol=tol, max_iter=max_iter, phase=phase)
        self.solves.append(solution.stats)
        return solution.z

    def settings(self) -> dict[str, object]:
        return {
            "f_solver": self.f_solver,
            "b_solver": self.b_solver,
            "f_tol": self.f_tol,
            "b_tol": self.b_tol,
            "f_max_iter": self.f_max_iter,
            "b_max_iter": self.b_max_iter,
        }

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"{type(self).__name__}({knobs})"
