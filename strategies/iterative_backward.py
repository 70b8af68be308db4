"""`iterative-backward`: forward without a graph, the adjoint iterated inside the graph.

The forward solve runs without autograd. The backward turns an incoming cotangent ``u`` into
``g = u (I - J)^{-1}`` by iterating ``g <- g J + u`` *inside* the autograd graph and then
returns ``g`` times f's partial derivatives in theta and x, so higher orders unroll through
the backward iterations (the seed author's PIDEQ approach). Memory grows with the number of
backward iterations.

Exactness above first order needs every derivative of f in the backward to be taken *at the
differentiable z** (so its dependence on theta and x is seen by the next pass, and routed
through this backward again), never at a detached copy. docs/explanations/strategies.md names two places
where that matters: the vjps of the iterations (J), and the hook that must stay registered.
deqbench found a third: the final partials f_theta, f_x. The usual hook on a re-attached
``z = f(theta, x, z*.detach())`` takes them at the detached z*; on `tanh`-like layers this
goes unnoticed, because tanh's backward reuses its output (the hooked z), but on `planted`
it makes d2z*/dt2 wrong by 7e-2. Here the backward of a custom Function evaluates f at its
own output; while it takes the partials, autograd's walk back through that output into this
very backward contributes nothing (they are partial derivatives), while later passes that
reach the output are made implicit again.
"""

from __future__ import annotations

import torch

from deqbench.queries import QUERIES
from deqbench.strategies._autograd import AutogradStrategy, no_graph_forward, partials_or_none


class _IteratedFixedPoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, strategy, problem, names, x, *theta_values):
        return no_graph_forward(ctx, strategy, problem, names, x, theta_values)

    @staticmethod
    def backward(ctx, u):
        if getattr(ctx, "taking_partials", False):
            # Re-entered while the partials below follow z back here: they are partial
            # derivatives, so this path contributes nothing to them.
            return (None,) * (3 + len(ctx.saved_tensors) - 1)
        z, x, *theta_values = ctx.saved_tensors  # z: this Function's output, differentiable
        theta = dict(zip(ctx.names, theta_values, strict=True))
        record = torch.is_grad_enabled()  # True when the caller asked for create_graph
        with torch.enable_grad():
            z_node = z.view_as(z)  # vjps w.r.t. this node stop there, and do not re-enter
            f_z = ctx.problem.f(theta, x, z_node)

        def adjoint_step(g):
            (vjp,) = torch.autograd.grad(f_z, z_node, g, create_graph=record, retain_graph=True)
            return vjp + u

        with torch.set_grad_enabled(record):
            g = ctx.strategy.solve_backward(adjoint_step, u)
        inputs = [x, *theta_values]
        ctx.taking_partials = True
        try:
            partials = partials_or_none(f_z, inputs, g, record)
        finally:
            ctx.taking_partials = False
        return (None, None, None, *partials)


class IterativeBackward(AutogradStrategy):
    name = "iterative-backward"
    description = "no-graph forward; adjoint fixed point iterated inside the autograd graph"
    exact_queries = frozenset(QUERIES)
    # The backward iterations are recorded by autograd: plain iteration keeps them simple.
    default_b_solver = "fixed_point"

    def z_star(self, problem, theta, x):
        names = tuple(theta)
        return _IteratedFixedPoint.apply(self, problem, names, x, *theta.values())
