"""`implicit-vjp`: Bai et al. (2019), the standard implicit backward.

A custom autograd Function: the forward solve runs without a graph, and the backward solves
the adjoint fixed point ``g = g J + u`` with a solver, without a graph, then returns the vjp
of ``f`` with ``g``. First-order derivatives are exact. Above first order, autograd
differentiates only what the backward recorded (the final vjp of ``f``, with ``g`` a
constant), which drops every term that comes through the solve: whatever it returns there is
measured and reported, never hidden.

Because ``g`` is not differentiable in the incoming cotangent, the double-backward trick
cannot give a tangent through this Function; a full dz*/dt is taken the way a PINN user
must then take it, one reverse pass per state component.
"""

import torch

from deqbench.strategies._autograd import AutogradStrategy, no_graph_forward, partials_or_none, vjp


class _ImplicitFixedPoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, strategy, problem, names, x, *theta_values):
        return no_graph_forward(ctx, strategy, problem, names, x, theta_values)

    @staticmethod
    def backward(ctx, u):
        z, x, *theta_values = ctx.saved_tensors
        theta = dict(zip(ctx.names, theta_values, strict=True))
        with torch.enable_grad():
            z_leaf = z.detach().requires_grad_(True)
            f_z = ctx.problem.f(theta, x, z_leaf)

        def adjoint_step(g):
            (vjp,) = torch.autograd.grad(f_z, z_leaf, g, retain_graph=True)
            return vjp + u.detach()

        with torch.no_grad():
            g = ctx.strategy.solve_backward(adjoint_step, u.detach())
        partials = partials_or_none(f_z, [x, *theta_values], g, torch.is_grad_enabled())
        return (None, None, None, *partials)


class ImplicitVJP(AutogradStrategy):
    name = "implicit-vjp"
    description = "Bai et al. 2019: custom backward solves the adjoint without a graph"
    exact_queries = frozenset({"forward", "jvp", "grad"})

    def z_star(self, problem, theta, x):
        names = tuple(theta)
        return _ImplicitFixedPoint.apply(self, problem, names, x, *theta.values())

    def input_derivative(self, z, offsets, create_graph):
        """One reverse pass per state component: the backward is not differentiable in u."""
        columns = [vjp(z[:, j].sum(), offsets, create_graph=create_graph) for j in range(z.shape[1])]
        return torch.stack(columns, dim=1)  # (batch, m, k)
