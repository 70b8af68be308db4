"""f linearized at a fixed point: one autograd graph, recorded once, that every linear solve
of the `analytic` strategy and of the implicit layer (:mod:`._implicit_layer`) steps on.

J^T g is a reverse pass over f's graph, J v a reverse pass over that pass's own graph:
several times cheaper a step than a ``torch.func`` jvp that re-runs f.
"""

from __future__ import annotations

import torch

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
