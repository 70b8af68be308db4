"""`analytic`: implicit differentiation of the tangent DEQ, matrix-free (docs/explanations/mathematics.md).

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
polarization (``deqbench.partials``; docs/explanations/mathematics.md): the lines are stacked along the
batch, one Taylor chain of the highest order serves them all, and the loss combines the
chains, so the adjoint pass above is unchanged.
"""

from __future__ import annotations

import torch

try:  # what torch.autograd.grad calls; see _step_vjp
    from torch.autograd.graph import _engine_run_backward
except ImportError:  # pragma: no cover - a torch that moved it
    _engine_run_backward = None

from deqbench.queries import QUERIES
from deqbench.strategies._implicit_layer import ImplicitLayer
from deqbench.strategies.base import Strategy


def taylor_map(f, theta, x, e, z, tangents, order=None):
    """[f, d/dtau f, ..., d^k/dtau^k f] at tau = 0 along (e, z + sum tau^i/i! v_i).

    ``order`` (default: as many as there are tangents) may exceed the tangents given: the
    missing ones are zero, and the last derivative is then the right-hand side ``r_k`` of
    the next tangent. Leaving them out of the path (rather than adding ``tau^k/k! * 0``)
    spares every pass a product of J with zero, a matmul on dense layers.

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
        for _ in range(len(tangents) if order is None else order):
            (pairing,) = _grad_graph(pairing, tau)
            derivatives.append(_grad_graph(pairing, cotangent)[0])
    return derivatives


def _grad_graph(output, wrt, cotangent=None):
    """<cotangent, d output / d wrt> with its own graph kept (zeros where output does not
    depend on it: a derivative of f that vanishes, such as f_zz of a linear layer)."""
    wrt = [wrt] if isinstance(wrt, torch.Tensor) else wrt
    if not output.requires_grad:
        return [torch.zeros_like(t) for t in wrt]
    return torch.autograd.grad(
        output, wrt, cotangent, create_graph=True, allow_unused=True, materialize_grads=True
    )


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


def _loss_partials(loss, theta, state):
    """d loss / d theta and d loss / d state; the loss's graph is used once and freed. A
    parameter the loss ignores gets None, not zeros: a data loss ignores them all, and
    W-sized zeros (and their sum with the gradient) were half of grad's peak at m = 1024."""
    if not loss.requires_grad:
        return [None] * len(theta), [torch.zeros_like(s) for s in state]
    partials = torch.autograd.grad(loss, [*theta, *state], allow_unused=True)
    by_state = zip(partials[len(theta) :], state, strict=True)
    state_partials = [torch.zeros_like(s) if p is None else p for p, s in by_state]
    return partials[: len(theta)], state_partials


def _step_vjp(output: torch.Tensor, wrt: torch.Tensor, cotangent: torch.Tensor) -> torch.Tensor:
    """<cotangent, d output / d wrt> on a retained graph: the one reverse pass of a solver step.

    Runs autograd's engine as ``torch.autograd.grad`` does, without its Python argument
    handling (``_make_grads``' shape checks through the symbolic-shape helpers): about
    25 us a call on 2.13, a third of a step at m = 64. The engine itself still checks the
    cotangent's shape. Where the private entry point is gone, plain ``autograd.grad``.
    """
    if not output.requires_grad:  # J of a layer that ignores z (or its input)
        return torch.zeros_like(wrt)
    if _engine_run_backward is None:
        return _grad(output, [wrt], cotangent)[0]
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
        return _step_vjp(self.f_z, self.z, g)

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        return _step_vjp(self._transpose()[0], self.u, v)

    def input_jvp(self) -> torch.Tensor:
        """f_x[e], the right-hand side of the first tangent (zero without a direction)."""
        return _grad(self._transpose()[1], [self.u])[0]

    def first_order_map(self, v: torch.Tensor) -> list[torch.Tensor]:
        """The Taylor map of order one at (z*, v), ``[f, J v + f_x[e]]``, differentiable in
        z and theta: one reverse pass over the transposed graph instead of a new map."""
        transposed, input_pairing = self._transpose()
        with torch.enable_grad():
            pairing = (transposed * v.detach()).sum() + input_pairing  # <u, J v + f_x[e]>
            return [self.f_z, *_grad_graph(pairing, self.u)]

    def _transpose(self):
        if self._transposed is None:
            with torch.enable_grad():
                self.u = torch.zeros_like(self.f_z, requires_grad=True)
                self._transposed = _grad_graph(self.f_z, [self.z, self.tau], self.u)
        return self._transposed


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
        """v_1 .. v_order along e: one linear solve each, v_i = J v_i + r_i. The first
        right-hand side comes from the linearization, the others from the Taylor map."""
        tangents = []
        for i in range(1, order + 1):
            if i == 1:
                rhs = linear.input_jvp()
            else:
                rhs = taylor_map(problem.f, theta, x, e, z, tangents, order=i)[-1].detach()
            tangents.append(self.solve_backward(lambda v, rhs=rhs: linear.jvp(v) + rhs, rhs))
        return tangents

    def loss_gradient(self, problem, loss, x, e, tangents, linear):
        """d loss(theta, z*, v_1..v_k)/d theta by back substitution through the Taylor map.

        Reverse mode uses plain autograd on graphs built once (of f, of the Taylor map and of
        the loss) and reused by every solver step, so what autograd saves does not grow
        with iterations (and ``saved_tensors_hooks``, which torch.func.vjp refuses, see it).
        The Taylor map of orders 0 and 1 is the linearization's own graph; from order 2 on
        it is built anew at the solved tangents.
        """
        k = len(tangents)
        theta = linear.theta
        with torch.enable_grad():
            state = [linear.z, *(v.detach().requires_grad_(True) for v in tangents)]
            loss_theta, loss_state = _loss_partials(loss(theta, *state), list(theta.values()), state)
            if k == 0:
                taylor = [linear.f_z]
            elif k == 1:
                taylor = linear.first_order_map(tangents[0])
            else:
                taylor = taylor_map(problem.f, theta, x, e, state[0], state[1:])

        adjoints: list[torch.Tensor] = [torch.zeros_like(linear.z)] * (k + 1)
        for j in range(k, -1, -1):
            rhs = loss_state[j]
            if j < k:  # coupling from the higher orders, already solved (order j's own
                # derivative is the solve's J^T; the lower ones do not depend on state j)
                rhs = rhs + _grad(taylor[j + 1 :], [state[j]], adjoints[j + 1 :])[0]
            adjoints[j] = self.solve_backward(lambda g, rhs=rhs: linear.vjp(g) + rhs, rhs)
        theta_from_state = _grad(taylor, list(theta.values()), adjoints)
        return {
            name: (b if a is None else a + b).detach()
            for name, a, b in zip(theta, loss_theta, theta_from_state, strict=True)
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
        linear = Linearization(problem.f, theta, x, z, e if order else None)
        return [z, *self.tangents(problem, theta, x, e, z, order, linear)], linear

    @torch.no_grad()
    def grad(self, problem):
        x = problem.x
        _, linear = self._along(problem, "grad", 0)
        loss = lambda th, z_: problem.data_loss(th, x, z_)  # noqa: E731
        return self.loss_gradient(problem, loss, x, None, [], linear)

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
        linear = Linearization(problem.f, theta, x, z, e)
        tangents = self.tangents(problem, theta, x, e, z, plan.order, linear)

        def loss(th, z_, *vs):
            chains = [[v[line * batch : (line + 1) * batch] for v in vs] for line in range(lines)]
            return physics_loss(th, problem.x, z_[:batch], plan.combine(chains))

        return self.loss_gradient(problem, loss, x, e, tangents, linear)

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
        linear = Linearization(problem.f, theta, x, z, e)
        second = self.tangents(problem, theta, x, e, z, 2, linear)[-1].reshape(len(pairs), batch, -1)
        pure = {i: second[p] for p, (i, j) in enumerate(pairs) if i == j}
        hessian = torch.empty(batch, second.shape[-1], n, n, dtype=problem.dtype, device=problem.device)
        for p, (i, j) in enumerate(pairs):
            value = pure[i] if i == j else (second[p] - pure[i] - pure[j]) / 2
            hessian[:, :, i, j] = value
            hessian[:, :, j, i] = value
        return {"d2z_dx2": hessian}
