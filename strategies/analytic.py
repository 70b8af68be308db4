"""`analytic`: implicit differentiation of the tangent DEQ, matrix-free (DESIGN.md section 2).

Everything is a linear fixed-point solve with ``J = df/dz`` at the fixed point (tangents) or
its transpose (adjoints); every right-hand side is a directional derivative of ``f`` from
nested ``torch.func.jvp``/``vjp`` calls. No m x m (let alone m x m x n) tensor is formed and
no autograd graph outlives a solver step, so memory does not grow with iteration counts.

Derivatives of order k along a direction e come from the *Taylor map*: the first k
derivatives at tau = 0 of

    tau -> f(theta, x + tau e, z + tau v1 + tau^2/2 v2 + ...),

whose i-th entry is ``J v_i + r_i(z, v_1 .. v_{i-1})``. The tangents solve ``v_i = J v_i + r_i``
one order at a time. For the gradient of a loss on (z*, v_1 .. v_k), the stacked
(z, v_1 .. v_k) is the fixed point of the Taylor map, whose Jacobian is block lower-triangular
with J on the diagonal: its adjoint is solved block by block from the highest order down
(k + 1 solves the size of the original one).

A physics loss on named partials (u_t, u_xx, mixed u_tx, u_txx) needs derivatives along
several directions. Each is a combination of *pure* derivatives along a few lines, by
polarization (``deqbench.partials``; DESIGN.md section 2): the lines are stacked along the
batch, one Taylor chain of the highest order serves them all, and the loss combines the
chains, so the adjoint pass above is unchanged.
"""

from __future__ import annotations

import torch

from deqbench.queries import QUERIES
from deqbench.strategies._implicit_layer import ImplicitLayer
from deqbench.strategies.base import Strategy


def taylor_map(f, theta, x, e, z, tangents):
    """[f, d/dtau f, ..., d^k/dtau^k f] at tau = 0 along (e, z + sum tau^i/i! v_i).

    Reverse over reverse in a scalar tau, not ``torch.func.jvp``: with ``s = <u, f(path(tau))>``
    for a dummy cotangent u, each ``d s / d tau`` is again a scalar, linear in u, so the
    j-th derivative is ``grad_u d^j s / d tau^j``. Every pass runs in autograd's C++ engine;
    torch 2.13's forward mode dispatches elementwise ops with a tangent through Python
    decompositions (0.2-0.3 ms an add or a mul at any size), which made the nested-jvp map
    5 to 20x slower (tanh m=64, batch 128: 2.7 / 11.5 / 46 ms at orders 1 / 2 / 3 against
    0.57 / 0.88 / 2.4 ms). The result is differentiable (every pass keeps its graph), which
    ``loss_gradient``'s back substitution needs.
    """
    with torch.enable_grad():
        tau = torch.zeros((), dtype=z.dtype, device=z.device, requires_grad=True)
        z_tau, coefficient = z, 1.0
        for i, v in enumerate(tangents, start=1):
            coefficient = coefficient * tau / i
            z_tau = z_tau + coefficient * v
        image = f(theta, x + tau * e, z_tau)
        cotangent = torch.zeros_like(image, requires_grad=True)
        pairing = (cotangent * image).sum()  # <u, f>, then <u, d^j f / d tau^j>
        derivatives = [image]
        for _ in tangents:
            (pairing,) = _grad_graph(pairing, tau)
            derivatives.append(_grad_graph(pairing, cotangent)[0])
    return derivatives


def _grad_graph(output, wrt):
    """d output / d wrt with its own graph kept (zeros where output does not depend on it:
    a derivative of f that vanishes, such as f_zz of a linear layer)."""
    if not output.requires_grad:
        return [torch.zeros_like(wrt)]
    return torch.autograd.grad(output, wrt, create_graph=True, allow_unused=True, materialize_grads=True)


def _grad(outputs, inputs, cotangents=None):
    """Plain reverse-mode vjp on a retained graph; inputs that do not matter get zeros."""
    if isinstance(outputs, torch.Tensor):
        outputs = [outputs]
        cotangents = None if cotangents is None else [cotangents]
    if not any(output.requires_grad for output in outputs):  # constant: e.g. J of a layer
        return [torch.zeros_like(t) for t in inputs]  # that ignores z
    return torch.autograd.grad(
        outputs, inputs, cotangents, retain_graph=True, allow_unused=True, materialize_grads=True
    )


class Linearization:
    """J v and J^T g at a fixed point, each one reverse pass over graphs built once.

    ``J^T g`` is a vjp of f's graph at z*. ``J v`` is the derivative in ``u`` of the
    (linear) vjp ``J^T u``, whose graph is also built once: a reverse pass over it costs
    about a vjp, several times less than a forward-mode jvp that re-runs f every step.
    Both graphs are kept for the whole query, so memory does not grow with iterations.
    """

    def __init__(self, f, theta, x, z):
        with torch.enable_grad():
            self.z = z.detach().requires_grad_(True)
            self.f_z = f(theta, x, self.z)
        self._jt_u = None  # the graph of u -> J^T u, built on the first jvp (grad needs none)

    def vjp(self, g: torch.Tensor) -> torch.Tensor:
        return _grad(self.f_z, [self.z], g)[0]

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        if self._jt_u is None:
            with torch.enable_grad():
                self.u = torch.zeros_like(self.z, requires_grad=True)
                (self._jt_u,) = torch.autograd.grad(self.f_z, self.z, self.u, create_graph=True)
        return _grad(self._jt_u, [self.u], v)[0]


class Analytic(Strategy):
    name = "analytic"
    description = "linear fixed-point solves with (I - J) and its transpose; jvp/vjp only"
    supported_queries = frozenset(QUERIES)
    exact_queries = frozenset(QUERIES)
    # The linear solves contract at the forward's rate: on the zoo's layers Anderson saves
    # almost no steps there (tanh m=256: 42 vs 46 at rho=1.5) and costs more per step, so
    # plain iteration is the default, as for iterative-backward. `b_solver="anderson"` for
    # layers that contract slowly.
    default_b_solver = "fixed_point"
    default_f_solver = "fixed_point"

    def layer(self, problem):
        """z*(theta, x) as a torch function autograd differentiates exactly at every order
        (for training with `analytic`, and for gradcheck/gradgradcheck)."""
        return ImplicitLayer(self, problem)

    # --------------------------------------------------------------- pieces
    def fixed_point(self, problem, theta, x):
        with torch.no_grad():
            return self.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())

    def tangents(self, problem, theta, x, e, z, order, linear):
        """v_1 .. v_order along e: one linear solve each, v_i = J v_i + r_i."""
        tangents = []
        for _ in range(order):
            rhs = taylor_map(problem.f, theta, x, e, z, [*tangents, torch.zeros_like(z)])[-1]
            tangents.append(self.solve_backward(lambda v, rhs=rhs: linear.jvp(v) + rhs, rhs))
        return tangents

    def loss_gradient(self, problem, loss, theta, x, e, z, tangents, linear):
        """d loss(theta, z*, v_1..v_k)/d theta by back substitution through the Taylor map.

        Reverse mode uses plain autograd on graphs built once (of f, of the Taylor map and of
        the loss) and reused by every solver step, so what autograd saves does not grow
        with iterations (and ``saved_tensors_hooks``, which torch.func.vjp refuses, see it).
        """
        f = problem.f
        k = len(tangents)
        with torch.enable_grad():
            theta = {name: t.detach().requires_grad_(True) for name, t in theta.items()}
            state = [s.detach().requires_grad_(True) for s in (z, *tangents)]
            loss_partials = _grad(loss(theta, *state), [*theta.values(), *state])
            loss_theta, loss_state = loss_partials[: len(theta)], loss_partials[len(theta) :]
            taylor = taylor_map(f, theta, x, e, state[0], state[1:])

        def map_vjp(cotangents, wrt):
            return _grad(taylor, wrt, cotangents)

        adjoints: list[torch.Tensor] = [torch.zeros_like(z)] * (k + 1)
        for j in range(k, -1, -1):
            rhs = loss_state[j]
            if j < k:  # coupling from the higher orders, already solved
                rhs = rhs + map_vjp(adjoints, [state[j]])[0]

            adjoints[j] = self.solve_backward(lambda g, rhs=rhs: linear.vjp(g) + rhs, rhs)
        theta_from_state = map_vjp(adjoints, list(theta.values()))
        return {
            name: (a + b).detach() for name, a, b in zip(theta, loss_theta, theta_from_state, strict=True)
        }

    # -------------------------------------------------------------- queries
    @torch.no_grad()
    def forward(self, problem):
        z = self.fixed_point(problem, problem.theta, problem.x)
        return {"z_star": z, "output": problem.output(problem.theta, z)}

    @torch.no_grad()
    def jvp(self, problem):
        return {"dz_dt": self._along(problem, "jvp", 1)[0][-1]}

    @torch.no_grad()
    def jvp2(self, problem):
        return {"d2z_dt2": self._along(problem, "jvp2", 2)[0][-1]}

    def _along(self, problem, query, order):
        """z*, its first ``order`` derivatives along the query's direction, and J there."""
        theta, x, e = problem.theta, problem.x, problem.direction(query)
        z = self.fixed_point(problem, theta, x)
        linear = Linearization(problem.f, theta, x, z)
        return [z, *self.tangents(problem, theta, x, e, z, order, linear)], linear

    @torch.no_grad()
    def grad(self, problem):
        theta, x = problem.theta, problem.x
        (z,), linear = self._along(problem, "grad", 0)
        loss = lambda th, z_: problem.data_loss(th, x, z_)  # noqa: E731
        return self.loss_gradient(problem, loss, theta, x, problem.direction("jvp"), z, [], linear)

    @torch.no_grad()
    def pinn_grad(self, problem):
        return self._physics_gradient(problem, "pinn_grad")

    @torch.no_grad()
    def pinn2_grad(self, problem):
        return self._physics_gradient(problem, "pinn2_grad")

    def _physics_gradient(self, problem, query):
        """The physics loss's gradient: Taylor chains along the polarization plan's lines,
        stacked along the batch (line l holds samples l * batch .. (l + 1) * batch - 1)."""
        physics_loss, plan = problem.physics_query(query)[0], problem.partials_plan(query)
        theta, batch, lines = problem.theta, problem.batch, len(plan.lines)
        x = problem.x.repeat(lines, 1)
        e = torch.stack(plan.direction_vectors(problem.directions)).repeat_interleave(batch, dim=0)
        z = self.fixed_point(problem, theta, problem.x).repeat(lines, 1)
        linear = Linearization(problem.f, theta, x, z)
        tangents = self.tangents(problem, theta, x, e, z, plan.order, linear)

        def loss(th, z_, *vs):
            chains = [[v[line * batch : (line + 1) * batch] for v in vs] for line in range(lines)]
            return physics_loss(th, problem.x, z_[:batch], plan.combine(chains))

        return self.loss_gradient(problem, loss, theta, x, e, z, tangents, linear)

    @torch.no_grad()
    def hessian(self, problem):
        """All second derivatives at once by polarisation, batched over direction pairs.

        H(e_i, e_j) = (D2(e_i + e_j) - D2(e_i) - D2(e_j)) / 2, where D2(e) is d2z*/dtau2
        along e; the n(n+1)/2 directions are stacked along the batch.
        """
        theta, n, batch = problem.theta, problem.n, problem.batch
        eye = torch.eye(n, dtype=problem.dtype, device=problem.device)
        pairs = [(i, j) for i in range(n) for j in range(i, n)]
        directions = torch.stack([eye[i] + eye[j] if i != j else eye[i] for i, j in pairs])
        x = problem.x.repeat(len(pairs), 1)
        e = directions.repeat_interleave(batch, dim=0)
        z = self.fixed_point(problem, theta, problem.x).repeat(len(pairs), 1)
        linear = Linearization(problem.f, theta, x, z)
        second = self.tangents(problem, theta, x, e, z, 2, linear)[-1].reshape(len(pairs), batch, -1)
        pure = {i: second[p] for p, (i, j) in enumerate(pairs) if i == j}
        hessian = torch.empty(batch, second.shape[-1], n, n, dtype=problem.dtype, device=problem.device)
        for p, (i, j) in enumerate(pairs):
            value = pure[i] if i == j else (second[p] - pure[i] - pure[j]) / 2
            hessian[:, :, i, j] = value
            hessian[:, :, j, i] = value
        return {"d2z_dx2": hessian}
