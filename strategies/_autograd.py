"""Shared machinery of the strategies whose z* is a differentiable torch function.

`unrolled`, `iterative-backward` and `implicit-vjp` differ only in how they build z* for
autograd; every query is then what a PINN practitioner writes: reverse-mode autograd with
``create_graph`` for each order above the first.

Derivatives with respect to inputs are taken per sample: each sample gets its own offset
``s`` along the query's direction (``x + s e``), so one reverse pass gives the derivative of
every sample at once. A physics loss's named partials (u_t, u_xx, u_txx) get one offset per
direction they name, and each partial is the derivative of a lower one down its
multi-index (nested tangents), the way a PINN practitioner writes them with autograd.

A full tangent dz*/ds (m numbers a sample) comes from the double-backward trick:
``w(u) = <u, dz/ds>`` is linear in a dummy cotangent ``u``, and differentiating ``w`` with
respect to ``u`` gives dz/ds in two reverse passes whatever m is.
"""

from __future__ import annotations

import torch

from deqbench.problems.base import Problem, Theta
from deqbench.queries import QUERIES
from deqbench.strategies.base import Strategy


def vjp(output, wrt, cotangent=None, create_graph=False):
    """d<cotangent, output>/d wrt, zero where output does not depend on wrt at all.

    A linear layer's second derivative is identically zero: its graph is then disconnected,
    which plain autograd.grad reports as an error rather than a zero.
    """
    if not output.requires_grad:
        return torch.zeros_like(wrt)
    (gradient,) = torch.autograd.grad(
        output,
        wrt,
        cotangent,
        create_graph=create_graph,
        retain_graph=True,
        allow_unused=True,
        materialize_grads=True,
    )
    return gradient


def no_graph_forward(ctx, strategy, problem, names, x, theta_values) -> torch.Tensor:
    """The forward of a custom fixed-point Function: solved without a graph, then saved
    (z*, x, theta) for its backward. Shared by `implicit-vjp` and `iterative-backward`."""
    theta = dict(zip(names, theta_values, strict=True))
    with torch.no_grad():
        z = strategy.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())
    ctx.strategy, ctx.problem, ctx.names = strategy, problem, names
    ctx.save_for_backward(z, x, *theta_values)
    return z


def partials_or_none(output, inputs, cotangent, create_graph):
    """vjp of ``output`` with ``cotangent`` for each of ``inputs``, None where an input does
    not require grad: what a custom Function's backward returns for them."""
    wanted = [t for t in inputs if t.requires_grad]
    grads = iter(
        torch.autograd.grad(
            output,
            wanted,
            cotangent,
            create_graph=create_graph,
            retain_graph=True,
            allow_unused=True,
            materialize_grads=True,
        )
    )
    return [next(grads) if t.requires_grad else None for t in inputs]


class AutogradStrategy(Strategy):
    """Base of the torch strategies whose z* is a function autograd can differentiate.

    Public as ``deqbench.AutogradStrategy`` (and ``deqbench.strategies.AutogradStrategy``).
    A subclass sets ``name`` (and ``exact_queries``, ``description`` as for any
    :class:`~deqbench.strategies.base.Strategy`) and implements one method,
    :meth:`z_star`; every query is then answered the way a PINN practitioner writes it with
    autograd: ``forward`` without a graph, ``jvp``, ``jvp2`` and ``hessian`` by per-sample
    input offsets and double backward, ``grad`` by one reverse pass, and ``pinn_grad`` /
    ``pinn2_grad`` by nested tangents down each named partial's multi-index with
    ``create_graph``, then a reverse pass to the parameters. Whether those answers are
    exact depends only on how :meth:`z_star` builds the fixed point: a subclass claims
    exact only what it can promise (``exact_queries``); the rest is measured.

    Example: autograd through a fixed number of plain iterations::

        class TenSteps(AutogradStrategy):
            name = "ten-steps"
            exact_queries = frozenset()

            def z_star(self, problem, theta, x):
                z = problem.z_init()
                for _ in range(10):
                    z = problem.f(theta, x, z)
                return z
    """

    supported_queries = frozenset(QUERIES)

    def z_star(self, problem: Problem, theta: Theta, x: torch.Tensor) -> torch.Tensor:
        """The fixed point as a function autograd can differentiate in theta and x.

        ``theta`` may be leaf tensors that require grad and ``x`` may be shifted inputs
        ``x + s e`` whose offsets ``s`` require grad: build z* from ``problem.f(theta, x,
        z)`` with these, never from ``problem.theta`` or ``problem.x``. Run fixed-point
        solves through ``self.solve_forward(g, z0)`` / ``self.solve_backward(g, z0)`` so
        that their statistics are recorded (a solve that did not converge is flagged).
        Returns a (batch, m) tensor.
        """
        raise NotImplementedError

    # --------------------------------------------------------------- helpers
    def input_derivative(self, z: torch.Tensor, offsets: torch.Tensor, create_graph: bool) -> torch.Tensor:
        """dz/d offsets per sample, (batch, m, k), by the double-backward trick.

        The dummy cotangent is ones, not zeros: its value does not change the (linear) result,
        but a backward solver that starts from a zero cotangent stops at once.
        """
        dummy = torch.ones_like(z, requires_grad=True)
        w = vjp(z, offsets, dummy, create_graph=True)  # (batch, k), linear in dummy
        columns = [vjp(w[:, i].sum(), dummy, create_graph=create_graph) for i in range(offsets.shape[1])]
        return torch.stack(columns, dim=-1)

    @staticmethod
    def leaf_theta(problem: Problem) -> Theta:
        return {k: v.detach().clone().requires_grad_(True) for k, v in problem.theta.items()}

    @staticmethod
    def offset_inputs(problem: Problem, directions: torch.Tensor):
        """Per-sample offsets (batch, k) along ``directions`` (k, n), and the shifted inputs."""
        offsets = torch.zeros(
            problem.batch,
            directions.shape[0],
            dtype=problem.dtype,
            device=problem.device,
            requires_grad=True,
        )
        return offsets, problem.x + offsets @ directions

    def along(self, problem: Problem, query: str, theta: Theta, order: int, create_graph: bool):
        """z*, and its first ``order`` derivatives along the query's direction."""
        offsets, xs = self.offset_inputs(problem, problem.direction(query)[None])
        derivatives = [self.z_star(problem, theta, xs)]
        for k in range(order):
            last = k == order - 1
            d = self.input_derivative(derivatives[-1], offsets, create_graph or not last)
            derivatives.append(d[..., 0])
        return xs, derivatives

    @staticmethod
    def parameter_gradient(loss: torch.Tensor, theta: Theta) -> dict[str, torch.Tensor]:
        grads = torch.autograd.grad(loss, list(theta.values()), allow_unused=True, materialize_grads=True)
        return {name: g.detach() for name, g in zip(theta, grads, strict=True)}

    # --------------------------------------------------------------- queries
    def forward(self, problem: Problem):
        with torch.no_grad():
            z = self.z_star(problem, problem.theta, problem.x)
            return {"z_star": z, "output": problem.output(problem.theta, z)}

    def jvp(self, problem: Problem):
        _, (_, v) = self.along(problem, "jvp", problem.theta, 1, create_graph=False)
        return {"dz_dt": v.detach()}

    def jvp2(self, problem: Problem):
        _, (_, _, w) = self.along(problem, "jvp2", problem.theta, 2, create_graph=False)
        return {"d2z_dt2": w.detach()}

    def grad(self, problem: Problem):
        theta = self.leaf_theta(problem)
        z = self.z_star(problem, theta, problem.x)
        return self.parameter_gradient(problem.data_loss(theta, problem.x, z), theta)

    def named_partials(self, problem: Problem, theta: Theta, partials: dict[str, tuple[str, ...]]):
        """The inputs, z* and its partials by name, each the derivative of the partial one
        order lower (``D_txx = D_x D_tx``): one offset per direction named, and every partial
        kept in the graph (``create_graph``) for the parameter gradient."""
        names = sorted({direction for index in partials.values() for direction in index})
        basis = torch.stack([problem.directions[name] for name in names])
        offsets, xs = self.offset_inputs(problem, basis)
        known = {(): self.z_star(problem, theta, xs)}

        def partial(index: tuple[str, ...]) -> torch.Tensor:
            if index not in known:
                columns = self.input_derivative(partial(index[:-1]), offsets, create_graph=True)
                for i, name in enumerate(names):  # every direction at once: keep them all
                    known.setdefault(tuple(sorted((*index[:-1], name))), columns[..., i])
            return known[index]

        return xs, known[()], {name: partial(index) for name, index in partials.items()}

    def physics_gradient(self, problem: Problem, query: str):
        theta = self.leaf_theta(problem)
        loss, partials = problem.physics_query(query)
        xs, z, d = self.named_partials(problem, theta, partials)
        return self.parameter_gradient(loss(theta, xs, z, d), theta)

    def pinn_grad(self, problem: Problem):
        return self.physics_gradient(problem, "pinn_grad")

    def pinn2_grad(self, problem: Problem):
        return self.physics_gradient(problem, "pinn2_grad")

    def hessian(self, problem: Problem):
        eye = torch.eye(problem.n, dtype=problem.dtype, device=problem.device)
        offsets, xs = self.offset_inputs(problem, eye)
        z = self.z_star(problem, problem.theta, xs)
        jacobian = self.input_derivative(z, offsets, create_graph=True)  # (batch, m, n)
        rows = [
            self.input_derivative(jacobian[..., i], offsets, create_graph=False) for i in range(problem.n)
        ]
        return {"d2z_dx2": torch.stack(rows, dim=-2).detach()}
