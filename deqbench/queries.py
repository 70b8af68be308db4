"""The queries: what a user asks of a fixed point, and what each answer holds.

Every query is a function of (strategy, problem instance). Its answer is a dict of named
tensors plus the statistics of every solve that produced it; the harness compares each named
tensor with the oracle's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch

from deqbench.solvers import SolverStats


@dataclass(frozen=True)
class Query:
    name: str
    order: int  # derivative order of z* involved (at least this, for the physics queries)
    description: str


QUERIES: dict[str, Query] = {
    q.name: q
    for q in [
        Query("forward", 0, "z* and the model output"),
        Query("jvp", 1, "dz*/dt along the problem's jvp direction (t)"),
        Query("jvp2", 2, "d2z*/dt2 along the problem's jvp direction (t)"),
        Query("grad", 1, "gradient of the data loss on z* w.r.t. every parameter"),
        Query(
            "pinn_grad",
            2,
            "gradient w.r.t. every parameter of the physics loss on z* and its named partials "
            "(physics_partials; order 2 or more)",
        ),
        Query(
            "pinn2_grad",
            3,
            "gradient w.r.t. every parameter of the second physics loss (physics2_partials, a "
            "second-order residual or a residual's derivative; order 3 or more)",
        ),
        Query("hessian", 2, "full input Hessian d2z*/dx2, shape (batch, m, n, n); small n only"),
    ]
}


class UnsupportedQueryError(NotImplementedError):
    """A strategy or a problem does not support a query; the matrix records 'unsupported'."""


class NotConvergedWarning(RuntimeWarning):
    """A solve stopped before reaching its tolerance: the numbers are not to be trusted."""


@dataclass
class QueryResult:
    """A query's answer: named tensors, and the statistics of every solve behind them."""

    query: str
    values: dict[str, torch.Tensor]
    solves: list[SolverStats] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return all(s.converged for s in self.solves)

    def solver_totals(self) -> dict[str, float]:
        """Iterations, function evaluations and convergence, summed forward and backward."""
        totals: dict[str, float] = {}
        for phase in ("forward", "backward"):
            phase_solves = [s for s in self.solves if s.phase == phase]
            totals[f"{phase}_solves"] = len(phase_solves)
            totals[f"{phase}_iterations"] = sum(s.iterations for s in phase_solves)
            totals[f"{phase}_nfev"] = sum(s.nfev for s in phase_solves)
            totals[f"{phase}_max_residual"] = max((s.residual for s in phase_solves), default=0.0)
            totals[f"{phase}_converged"] = all(s.converged for s in phase_solves)
        return totals

    def warn_if_not_converged(self) -> None:
        bad = [s for s in self.solves if not s.converged]
        if bad:
            worst = max(bad, key=lambda s: s.residual)
            warnings.warn(
                f"{self.query}: {len(bad)} of {len(self.solves)} solves did not converge "
                f"(worst {worst.phase} residual {worst.residual:.3g} after {worst.iterations} "
                f"iterations of {worst.solver}); results are flagged not converged",
                NotConvergedWarning,
                stacklevel=3,
            )


def check_query_name(name: str) -> Query:
    try:
        return QUERIES[name]
    except KeyError:
        raise ValueError(f"unknown query {name!r}; known: {', '.join(QUERIES)}") from None
