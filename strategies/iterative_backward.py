"""`iterative-backward`: forward without a graph, the adjoint iterated inside the graph.

The forward solve runs without autograd; one call of ``f`` at the fixed point re-attaches
theta and x. A gradient hook on that re-attached ``z`` turns every incoming cotangent ``u``
into ``g = u (I - J)^{-1}`` by iterating ``g <- g J + u`` *inside* the autograd graph, so
higher orders unroll through the backward iterations (the seed author's PIDEQ approach).

Two details make it exact above first order (DESIGN.md section 3):

- the in-graph vjps are taken at the re-attached ``z``, not at the detached z*, so ``J``
  carries its dependence on theta and x into the next backward pass;
- the hook stays registered and is itself differentiable, so a second backward pass that
  reaches ``z`` (through those vjps) is again made implicit. The seed author's code removed
  the hook after its first call, which makes its physics-loss gradient an approximation.
"""

import torch

from deqbench.queries import QUERIES
from deqbench.strategies._autograd import AutogradStrategy


class IterativeBackward(AutogradStrategy):
    name = "iterative-backward"
    description = "no-graph forward; adjoint fixed point iterated inside the autograd graph"
    exact_queries = frozenset(QUERIES)
    # The backward iterations are recorded by autograd: plain iteration keeps them simple.
    default_b_solver = "fixed_point"

    def z_star(self, problem, theta, x):
        with torch.no_grad():
            z_fixed = self.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())
        z = problem.f(theta, x, z_fixed)
        if z.requires_grad:
            z.register_hook(self._implicit_hook(problem, theta, x, z))
        return z

    def _implicit_hook(self, problem, theta, x, z):
        def hook(u: torch.Tensor) -> torch.Tensor:
            record = torch.is_grad_enabled()  # True when the caller asked for create_graph
            with torch.enable_grad():
                # A fresh node on top of z: vjps are taken with respect to it, so computing
                # them does not fire this hook, while later passes through it reach z.
                z_node = z.view_as(z)
                f_z = problem.f(theta, x, z_node)

            def adjoint_step(g):
                (vjp,) = torch.autograd.grad(f_z, z_node, g, create_graph=record, retain_graph=True)
                return vjp + u

            with torch.set_grad_enabled(record):
                return self.solve_backward(adjoint_step, u)

        return hook
