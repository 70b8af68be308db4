"""Fixed-point solvers shared by every strategy: the forward pass and every linear solve.

Each solver finds ``z = g(z)`` for a batch of independent samples (the leading dimension);
Anderson acceleration mixes history *per sample*, so that differentiating through it (the
`unrolled` strategy) never couples samples. Solvers run with or without autograd: under
autograd they use no in-place writes, so every step is recorded.

Convergence is judged on the worst sample's relative residual
``|g(z) - z| / |g(z)|``; a zero solution (``g(z) = z = 0``) counts as converged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Map = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SolverStats:
    """What one solve did; strategies collect one per solve, tagged with its phase."""

    phase: str  # "forward" or "backward"
    solver: str
    iterations: int
    nfev: int
    residual: float
    converged: bool


@dataclass
class Solution:
    z: torch.Tensor
    stats: SolverStats


def relative_residual(gz: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Worst sample's |g(z) - z| / |g(z)| (0 where both vanish)."""
    with torch.no_grad():
        diff = (gz - z).flatten(1).norm(dim=1)
        scale = gz.flatten(1).norm(dim=1).clamp_min(torch.finfo(gz.dtype).tiny)
        return (diff / scale).max()


def _finish(phase, solver, z, iterations, nfev, residual, tol) -> Solution:
    res = float(residual)
    converged = bool(res <= tol)  # NaN compares False: a blown-up solve is not converged.
    return Solution(z, SolverStats(phase, solver, iterations, nfev, res, converged))


def fixed_point(g: Map, z0: torch.Tensor, *, tol: float, max_iter: int, phase: str = "forward"):
    """Plain iteration ``z <- g(z)``: the baseline, and what `unrolled` records by default."""
    z = z0
    residual = torch.tensor(float("inf"))
    for k in range(1, max_iter + 1):
        gz = g(z)
        residual = relative_residual(gz, z)
        z = gz
        if residual <= tol:
            return _finish(phase, "fixed_point", z, k, k, residual, tol)
        if not torch.isfinite(residual):
            break
    return _finish(phase, "fixed_point", z, k, k, residual, tol)


def anderson(
    g: Map,
    z0: torch.Tensor,
    *,
    tol: float,
    max_iter: int,
    phase: str = "forward",
    memory: int = 6,
    regularization: float = 1e-10,
    beta: float = 1.0,
):
    """Anderson acceleration (type II), history of ``memory`` steps, mixed per sample.

    The least-squares weights solve, for each sample, ``min |sum_i a_i r_i|`` with
    ``sum_i a_i = 1`` over the residuals ``r_i = g(z_i) - z_i`` in the history. The
    regularization is relative to the residuals' scale, so it does not stall the last
    digits of a solve driven to 1e-12.
    """
    shape = z0.shape
    batch = shape[0]
    flat = lambda t: t.reshape(batch, -1)  # noqa: E731
    xs = [flat(z0)]
    fs = [flat(g(z0))]
    residual = relative_residual(fs[0], xs[0])
    g_mixed, k = fs[0], 1
    if residual <= tol:
        return _finish(phase, "anderson", g_mixed.reshape(shape), k, k, residual, tol)
    for k in range(2, max_iter + 1):  # noqa: B007 (k is reported after the loop)
        X = torch.stack(xs, dim=1)  # (batch, h, d)
        F = torch.stack(fs, dim=1)
        R = F - X
        gram = R @ R.transpose(1, 2)  # (batch, h, h)
        h = gram.shape[1]
        # Normalised per sample, so the regularization is relative and a sample whose
        # residuals are all zero (already solved) gets finite, harmless weights.
        scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(torch.finfo(z0.dtype).tiny)
        eye = torch.eye(h, dtype=z0.dtype, device=z0.device)
        ones = torch.ones(batch, h, 1, dtype=z0.dtype, device=z0.device)
        weights = torch.linalg.solve(gram / scale[:, None, None] + regularization * eye, ones)
        alpha = weights / weights.sum(dim=1, keepdim=True)  # (batch, h, 1)
        mixed = (alpha * (beta * F + (1 - beta) * X)).sum(dim=1)
        g_mixed = flat(g(mixed.reshape(shape)))
        residual = relative_residual(g_mixed, mixed)
        xs = (xs + [mixed])[-memory:]
        fs = (fs + [g_mixed])[-memory:]
        if residual <= tol or not torch.isfinite(residual):
            break
    return _finish(phase, "anderson", g_mixed.reshape(shape), k, k, residual, tol)


SOLVERS: dict[str, Callable[..., Solution]] = {
    "fixed_point": fixed_point,
    "anderson": anderson,
}


def solve(name: str, g: Map, z0: torch.Tensor, *, tol: float, max_iter: int, phase: str) -> Solution:
    """Dispatch by solver name, with a clear error for an unknown one."""
    try:
        solver = SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}") from None
    return solver(g, z0, tol=tol, max_iter=max_iter, phase=phase)
