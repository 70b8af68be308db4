"""Fixed-point solvers shared by every strategy: the forward pass and every linear solve.

Each solver finds ``z = g(z)`` for a batch of independent samples (the leading dimension);
Anderson acceleration mixes history *per sample*, so that differentiating through it (the
`unrolled` strategy) never couples samples. Solvers run with or without autograd: under
autograd they use no in-place writes, so every step is recorded.

Convergence is judged on the worst sample's relative residual
``|g(z) - z| / |g(z)|``; a zero solution (``g(z) = z = 0``) counts as converged. A ``tol`` of
None is the tolerance of the iterate's dtype (:func:`deqbench.tolerances.solver_tol`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deqbench.tolerances import solver_tol

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
    tol: float
    rows: int = 0  # samples in the solve's batch (0: not recorded); a step's cost scales with it

    def describe(self) -> str:
        """One line for a warning: which solve, how far it got, and in how many steps."""
        return (
            f"{self.phase} solve did not converge: residual {self.residual:.3g} > tol {self.tol:.3g}"
            f" after {self.iterations} iterations of {self.solver}"
        )


@dataclass
class Solution:
    z: torch.Tensor
    stats: SolverStats


def relative_residual(gz: torch.Tensor, z: torch.Tensor) -> float:
    """Worst sample's |g(z) - z| / |g(z)| (0 where both vanish), as a Python number: a
    solver compares it and tests it for finiteness on the host, one transfer instead of
    one tensor op and one transfer for each (a check costs half as much at m = 64)."""
    with torch.no_grad():
        return float(worst_relative(gz - z, gz))


def worst_relative(difference: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """max over samples of |difference| / |reference| (0 where both vanish)."""
    with torch.no_grad():
        norm = torch.linalg.vector_norm  # not Tensor.norm: its Python wrapper costs more than the norm
        scale = norm(reference.flatten(1), dim=1).clamp_min(torch.finfo(reference.dtype).tiny)
        return (norm(difference.flatten(1), dim=1) / scale).max()


def _finish(phase, solver, z, iterations, nfev, residual, tol) -> Solution:
    res = float(residual)
    converged = bool(res <= tol)  # NaN compares False: a blown-up solve is not converged.
    return Solution(z, SolverStats(phase, solver, iterations, nfev, res, converged, tol, z.shape[0]))


def _tolerance(tol: float | None, z0: torch.Tensor) -> float:
    return solver_tol(z0.dtype) if tol is None else tol


def fixed_point(g: Map, z0: torch.Tensor, *, tol: float | None = None, max_iter: int, phase: str = "forward"):
    """Plain iteration ``z <- g(z)``: the baseline, and what `unrolled` records by default.

    The residual is measured only when the observed contraction rate says the solve may be
    near its tolerance (:class:`CheckSchedule`): the iterates are the same, a solve stops at
    most a step or two later than one checked every step, and most of the norms and
    host-side comparisons (a third of a step on small layers) are gone.
    """
    tol = _tolerance(tol, z0)
    schedule = CheckSchedule(tol, max_iter)
    z = z0
    residual = math.inf
    for k in range(1, max_iter + 1):
        gz = g(z)
        if schedule.due(k):
            residual = relative_residual(gz, z)
            if residual <= tol or not math.isfinite(residual):
                return _finish(phase, "fixed_point", gz, k, k, residual, tol)
            schedule.observe(k, residual)
        z = gz
    return _finish(phase, "fixed_point", z, k, k, residual, tol)


class CheckSchedule:
    """When a linearly converging iteration next measures its residual.

    The first two steps are checked; after that, the fastest rate ``q`` seen between two
    checks predicts ``n = log(tol / r) / log(q)`` more steps to the tolerance, and the next
    check comes after half of them, and after no more than a third of the steps taken so
    far (at least one). The fastest rate, and the cap, bound the overshoot where a
    non-normal map converges slowly first and fast later: a solve stops at most a third of
    its steps later than one checked every step, and on the zoo's layers (steady rates) at
    the same step, with about a third of the checks. A residual that does not shrink is
    checked every step, so divergence is caught as before; ``max_iter`` is always checked.
    """

    def __init__(self, tol: float, max_iter: int):
        self.tol, self.max_iter = tol, max_iter
        self.next, self.last = 1, None  # the next step to check; (step, residual) of the last
        self.rate = 1.0  # the fastest contraction per step seen so far

    def due(self, k: int) -> bool:
        return k >= self.next or k == self.max_iter

    def observe(self, k: int, residual: float) -> None:
        self.next = k + 1
        if self.last is not None and 0 < residual < self.last[1]:
            self.rate = min(self.rate, (residual / self.last[1]) ** (1 / (k - self.last[0])))
            remaining = math.log(self.tol / residual) / math.log(self.rate) if self.tol > 0 else math.inf
            self.next = k + max(1, int(min(remaining / 2, k / 3)))
        self.last = (k, residual)


def anderson(
    g: Map,
    z0: torch.Tensor,
    *,
    tol: float | None = None,
    max_iter: int,
    phase: str = "forward",
    memory: int = 6,
    regularization: float = 1e-10,
):
    """Anderson acceleration (type II), history of ``memory`` steps, mixed per sample.

    The weights solve, for each sample, ``min |sum_i a_i r_i|`` with ``sum_i a_i = 1`` over
    the residuals ``r_i = g(z_i) - z_i`` in the history, and the next iterate is
    ``sum_i a_i g(z_i)``. The Gram matrix of the residuals is updated one row a step, and
    normalised per sample so that the regularization is relative (it does not stall the last
    digits of a solve driven to 1e-12) and a sample whose residuals are all zero (already
    solved) gets finite, harmless weights. A sample whose system cannot be solved takes a
    plain fixed-point step instead (:func:`mixing_weights`): the solver never raises on a
    singular history. No in-place writes on recorded tensors: autograd can record it.
    """
    tol = _tolerance(tol, z0)
    regularization = relative_regularization(regularization, z0.dtype)
    shape, batch = z0.shape, z0.shape[0]
    flat = lambda t: t.reshape(batch, -1, 1)  # noqa: E731 - columns, for batched dot products
    g_z = flat(g(z0))
    residuals, images = [g_z - flat(z0)], [g_z]
    gram = residuals[0].transpose(1, 2) @ residuals[0]  # (batch, 1, 1)
    residual = worst_relative(residuals[0], g_z)
    k = 1
    while residual > tol and torch.isfinite(residual) and k < max_iter:
        k += 1
        h = gram.shape[1]
        alpha = mixing_weights(gram, regularization)  # (batch, h, 1)
        mixed = images[0] * alpha[:, :1]  # sum_i a_i g(z_i), accumulated in one fresh buffer
        for i in range(1, h):
            mixed = mixed.addcmul_(images[i], alpha[:, i : i + 1])
        g_z = flat(g(mixed.reshape(shape)))
        new = g_z - mixed
        residual = worst_relative(new, g_z)
        if h == memory:  # slide the window: drop the oldest step
            residuals, images, gram = residuals[1:], images[1:], gram[:, 1:, 1:]
        residuals, images = residuals + [new], images + [g_z]
        row = torch.stack([torch.linalg.vecdot(new, r, dim=1) for r in residuals], dim=2)  # (batch, 1, h)
        gram = torch.cat([torch.cat([gram, row[:, :, :-1].transpose(1, 2)], dim=2), row], dim=1)
    return _finish(phase, "anderson", g_z.reshape(shape), k, k, residual, tol)


def relative_regularization(regularization: float, dtype: torch.dtype) -> float:
    """The ridge added to the normalised Gram matrix, at least ten eps of ``dtype``.

    The normalised Gram matrix has entries of order one, and near convergence the residuals
    become nearly parallel, so it is close to singular. A ridge below the dtype's resolution
    is lost to rounding (1 + 1e-10 == 1 in float32) and the system is singular in float
    arithmetic; ten eps sits just above the rounding noise of the Gram's own entries and
    leaves the weights all but unregularized. In float64 the default 1e-10 is already larger.
    """
    return max(regularization, 10 * torch.finfo(dtype).eps)


def mixing_weights(gram: torch.Tensor, regularization: float) -> torch.Tensor:
    """Per-sample Anderson weights (batch, h, 1) summing to one, from the residuals' Gram.

    Where a sample's regularized system is singular or its weights are not finite (a NaN or
    inf residual, a history of identical residuals), that sample takes the plain fixed-point
    step instead: weight one on its newest image.
    """
    batch, h = gram.shape[0], gram.shape[1]
    scale = gram.diagonal(dim1=1, dim2=2).amax(dim=1).clamp_min(torch.finfo(gram.dtype).tiny)
    eye = torch.eye(h, dtype=gram.dtype, device=gram.device)
    system = gram / scale[:, None, None] + regularization * eye
    ones = torch.ones(batch, h, 1, dtype=gram.dtype, device=gram.device)
    weights, info = torch.linalg.solve_ex(system, ones)
    alpha = weights / weights.sum(dim=1, keepdim=True)
    # The usual case, checked with one reduction (it costs what linalg.solve's own check
    # did): a failed factorization divides by a zero pivot, so its weights are not finite
    # either, and the sum of all weights is finite only if every one is.
    if math.isfinite(alpha.sum().item()):
        return alpha
    failed = (info != 0) | ~torch.isfinite(alpha).all(dim=1)[:, 0]
    return _fixed_point_step_where(failed, system, ones)


def _fixed_point_step_where(failed: torch.Tensor, system: torch.Tensor, ones: torch.Tensor):
    """Weights solved again with the failed samples' systems swapped for the identity, then
    one-hot on the newest image there. Solving again (rather than masking the first answer)
    keeps autograd's backward finite: a masked NaN still turns the gradient into NaN."""
    h = system.shape[1]
    eye = torch.eye(h, dtype=system.dtype, device=system.device)
    failed = failed[:, None, None]
    weights = torch.linalg.solve_ex(torch.where(failed, eye, system), ones)[0]
    alpha = weights / weights.sum(dim=1, keepdim=True)
    newest_only = eye[:, -1:]  # (h, 1): weight one on the newest image
    return torch.where(failed, newest_only, alpha)


SOLVERS: dict[str, Callable[..., Solution]] = {
    "fixed_point": fixed_point,
    "anderson": anderson,
}


def solve(
    name: str, g: Map, z0: torch.Tensor, *, tol: float | None = None, max_iter: int, phase: str
) -> Solution:
    """Dispatch by solver name, with a clear error for an unknown one (tol None: the dtype's)."""
    try:
        solver = SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(SOLVERS)}") from None
    return solver(g, z0, tol=tol, max_iter=max_iter, phase=phase)
