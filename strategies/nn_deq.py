"""`nn-deq`: the public layer :class:`deqbench.nn.DEQ`, verified as a user uses it.

The problem's layer is wrapped in a ``torch.nn.Module`` (:class:`ProblemCell`, called as
``f(z, x)``), the module in ``deqbench.nn.DEQ``, and every query is plain autograd on the
layer's output (:class:`~deqbench.strategies._autograd.AutogradStrategy`: ``create_graph``
for each order, tangents by the double-backward trick, ``loss.backward``-style parameter
gradients): nothing of deqbench's own derivative code but the layer. The parameters a
gradient is asked for are the module's ``nn.Parameter`` s; the values a query only reads are
the module's buffers, so both of a user's kinds of tensors are exercised.

Every query is claimed exact: the layer's backward is implicit at every order.
"""

from __future__ import annotations

import torch

from deqbench.nn import DEQ
from deqbench.queries import QueryResult
from deqbench.strategies._autograd import AutogradStrategy


class ProblemCell(torch.nn.Module):
    """A problem's ``f(theta, x, z)`` as a module ``f(z, x)``: theta's ``nn.Parameter`` s
    registered as parameters, its other tensors as buffers."""

    def __init__(self, problem, theta):
        super().__init__()
        self.problem, self.names = problem, tuple(theta)
        for name, value in theta.items():
            if isinstance(value, torch.nn.Parameter):
                self.register_parameter(name, value)
            else:
                self.register_buffer(name, value)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.problem.f({name: getattr(self, name) for name in self.names}, x, z)


class NNDEQ(AutogradStrategy):
    name = "nn-deq"
    description = "deqbench.nn.DEQ, the public torch layer, through plain autograd (any order)"
    exact_queries = AutogradStrategy.supported_queries
    # analytic's defaults (plain iteration both ways), so that the cost tables compare the
    # layer's autograd route with analytic's, not two solvers; the layer's own forward
    # default is Anderson.
    default_f_solver = "fixed_point"
    default_b_solver = "fixed_point"

    def run(self, query, problem) -> QueryResult:
        self._layers: list[DEQ] = []
        result = super().run(query, problem)
        # The layers' own statistics: forward solves, and every backward solve autograd made.
        result.solves.extend(stats for layer in self._layers for stats in layer.stats)
        return result

    @staticmethod
    def leaf_theta(problem):
        return {k: torch.nn.Parameter(v.detach().clone()) for k, v in problem.theta.items()}

    def z_star(self, problem, theta, x):
        tolerances = self.tolerances(problem.dtype)
        layer = DEQ(
            ProblemCell(problem, theta),
            z_init=lambda x_: problem.z_init(),
            solver=self.f_solver,
            tol=tolerances["f_tol"],
            max_iter=self.f_max_iter,
            backward_solver=self.b_solver,
            backward_tol=tolerances["b_tol"],
            backward_max_iter=self.b_max_iter,
        )
        getattr(self, "_layers", []).append(layer)
        return layer(x)
