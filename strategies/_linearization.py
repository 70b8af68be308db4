"""f linearized at a fixed point: one autograd graph, recorded once, that every linear solve
of the `analytic` strategy and of the implicit layer (:mod:`._implicit_layer`) steps on.

J^T g is a reverse pass over f's graph, J v a reverse pass over that pass's own graph:
several times cheaper a step than a ``torch.func`` jvp that re-runs f. On a small state the
same solves can be direct instead (:class:`DenseSolve`: J per sample formed from that graph
and LU-factored once).
"""

from __future__ import annotations

import torch

from deqbench.solvers import SolverStats, worst_relative

try:  # what torch.autograd.grad calls; see step_vjp
    from torch.autograd.graph import _engine_run_backward
except ImportError:  # pragma: no cover - a torch that moved it
    _engine_run_backward = None


def grad_with_graph(output, wrt, cotangent=None):
    """<cotangent, d output / d wrt> with its own graph kept (zeros where output does not
    depend on it: a derivative of f that vanishes, such as f_zz of a linear layer)."""
    wrt = [wrt] if isinstance(wrt, torch.Tensor) else wrt
    if not output.requires_grad:
        return [torch.zeros_like(t) for t in wrt]
    return torch.autograd.grad(
        output, wrt, cotangent, create_graph=True, allow_unused=True, materialize_grads=True
    )


def grad_retained(outputs, inputs, cotangents=None):
    """Plain reverse-mode vjp on a retained graph; inputs that do not matter get zeros."""
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
        cotangents = None if cotangents is None else [cotangents]
    if not any(output.requires_grad for output in outputs):  # constant: e.g. J of a layer
        return [torch.zeros_like(t) for t in inputs]  # that ignores z
    return torch.autograd.grad(
        outputs, inputs, cotangents, retain_graph=True, allow_unused=True, materialize_grads=True
    )


def step_vjp(output: torch.Tensor, wrt: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
    """<cotangent, d output / d wrt> on a retained graph: the one reverse pass of a solver step.

    Runs autograd's engine as ``torch.autograd.grad`` does, without its Python argument
    handling (``_make_grads``' shape checks through the symbolic-shape helpers): about
    25 us a call on 2.13, a third of a step at m = 64. The engine itself still checks the
    cotangent's shape. Where the private entry point is gone, plain ``autograd.grad``.
    """
    if not output.requires_grad:  # J of a layer that ignores z (or its input)
        return torch.zeros_like(wrt)
    if _engine_run_backward is None:
        return grad_retained(output, [wrt], cotangent)[0]
    run = _engine_run_backward
    (result,) = run((output,), (cotangent,), True, False, (wrt,), True, accumulate_grad=False)
    return torch.zeros_like(wrt) if result is None else result


class Linearization:
    """f at a fixed point as one autograd graph, built once, and what every solve needs of it.

    ``f(theta, x + tau e, z)`` at tau = 0 is recorded with theta, z and the scalar tau as
    leaves. A reverse pass over it gives ``J^T g`` (adjoint steps), and for an order-0
    loss (``grad``) it is the whole Taylor map, so the parameter gradient reuses it. The
    graph of the dummy-cotangent vjp ``u -> (J^T u, <u, f_x[e]>)`` is built on the first
    tangent: a reverse pass over it in u gives ``J v`` (tangent steps, about a vjp's cost,
    several times less than a forward-mode jvp that re-runs f), the first tangent's
    right-hand side ``f_x[e]``, and the first-order Taylor map ``J v + f_x[e]`` with its
    own graph. Every graph lives for the whole query: memory does not grow with iterations.
    """

    def __init__(self, f, theta, x, z, e=None):
        with torch.enable_grad():
            self.theta = {name: t.detach().requires_grad_(True) for name, t in theta.items()}
            self.z = z.detach().requires_grad_(True)
            self.tau = torch.zeros((), dtype=z.dtype, device=z.device, requires_grad=True)
            self.f_z = f(self.theta, x if e is None else x + self.tau * e, self.z)
        self._transposed = None  # (J^T u, <u, f_x[e]>), built on the first tangent

    def vjp(self, g: torch.Tensor) -> torch.Tensor:
        return step_vjp(self.f_z, self.z, g)

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        return step_vjp(self._transpose()[0], self.u, v)

    def input_jvp(self) -> torch.Tensor:
        """f_x[e], the right-hand side of the first tangent (zero without a direction)."""
        return grad_retained(self._transpose()[1], [self.u])[0]

    def first_order_map(self, v: torch.Tensor) -> list[torch.Tensor]:
        """The Taylor map of order one at (z*, v), ``[f, J v + f_x[e]]``, differentiable in
        z and theta: one reverse pass over the transposed graph instead of a new map."""
        transposed, input_pairing = self._transpose()
        with torch.enable_grad():
            pairing = (transposed * v.detach()).sum() + input_pairing  # <u, J v + f_x[e]>
            return [self.f_z, *grad_with_graph(pairing, self.u)]

    def _transpose(self):
        if self._transposed is None:
            with torch.enable_grad():
                self.u = torch.zeros_like(self.f_z, requires_grad=True)
                self._transposed = grad_with_graph(self.f_z, [self.z, self.tau], self.u)
        return self._transposed


#: The most entries (batch x m x m) of the per-sample Jacobians that a query forms: small
#: states only (m = 32 at batch 64 is 65536; the large preset, m = 256 at batch 256, 16.8
#: million, stays matrix-free).
DENSE_MAX_ENTRIES = 2**20


class DenseSolve:
    """Every linear solve of one query as two triangular solves with ``I - J`` per sample,
    LU-factored once: exact to rounding, where a plain iteration stops at its tolerance.

    J per sample comes from one batched reverse pass over f's graph on one copy of the
    batch (cotangent e_i on every sample at once: row i of each sample's J); it is checked
    once against a reverse pass with a cotangent that differs per sample, which catches a
    layer that couples samples (then :meth:`of` returns None and the solves iterate).
    Stacked right-hand sides (several copies of the batch) broadcast over the factors.
    Worth it where the solves would take more matvecs than forming J costs (m of them, in
    one batched call) and the per-step overhead of a small layer dominates.
    """

    def __init__(self, jacobian, factors, pivots):
        self.jacobian, self.factors, self.pivots = jacobian, factors, pivots

    @classmethod
    def of(cls, linear: Linearization, tol: float) -> tuple[DenseSolve | None, SolverStats]:
        """The factors of ``I - J`` at the linearization (one copy of the batch), or None
        where J cannot be formed per sample; the statistics of forming it (m reverse
        passes, batched; residual: the check's relative error)."""
        z = linear.z
        batch, m = z.shape
        basis = torch.eye(m, dtype=z.dtype, device=z.device)[:, None, :].expand(m, batch, m)
        try:  # an op without a batching rule for its backward: iterate instead
            with torch.enable_grad():
                rows = torch.autograd.grad(linear.f_z, z, basis, retain_graph=True, is_grads_batched=True)[0]
        except RuntimeError:
            return None, SolverStats("backward", "dense-lu", 0, 0, float("nan"), False, tol, batch)
        jacobian = rows.transpose(0, 1)  # (batch, i, j): d f_i / d z_j of each sample
        probe = torch.sin(0.7 * torch.arange(batch * m, dtype=z.dtype, device=z.device) + 0.3)
        probe = probe.reshape(batch, m)
        exact = linear.vjp(probe)
        error = float(worst_relative(torch.einsum("bi,bij->bj", probe, jacobian) - exact, exact))
        eye = torch.eye(m, dtype=z.dtype, device=z.device)
        factors, pivots, info = torch.linalg.lu_factor_ex(eye - jacobian)
        usable = error <= tol and not bool(info.any())
        stats = SolverStats("backward", "dense-lu", m, m, error, usable, tol, batch)
        return (cls(jacobian, factors, pivots) if usable else None), stats

    def solve(self, rhs: torch.Tensor, transpose: bool, tol: float) -> tuple[torch.Tensor, SolverStats]:
        """y = A y + rhs with A = J (tangents) or J^T (adjoints), rhs on copies of the batch;
        the statistics carry the fixed-point residual ``|A y + rhs - y| / |A y + rhs|``."""
        batch, m = self.jacobian.shape[0], self.jacobian.shape[1]
        columns = rhs.reshape(-1, batch, m, 1)
        y = torch.linalg.lu_solve(self.factors, self.pivots, columns, adjoint=transpose)
        product = "bji,cbj->cbi" if transpose else "bij,cbj->cbi"  # one bmm: a broadcast @ is 3x slower
        image = torch.einsum(product, self.jacobian, y[..., 0])[..., None] + columns
        residual = float(worst_relative((image - y).reshape(rhs.shape), image.reshape(rhs.shape)))
        converged = residual <= tol  # NaN compares False
        return y.reshape(rhs.shape), SolverStats(
            "backward", "dense-lu", 1, 1, residual, converged, tol, rhs.shape[0]
        )
