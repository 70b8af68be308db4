"""`analytic`: implicit differentiation of the tangent DEQ (docs/explanations/mathematics.md).

Everything is a linear fixed-point solve with ``J = df/dz`` at the fixed point (tangents) or
its transpose (adjoints); every right-hand side is a directional derivative of ``f`` from
reverse passes of autograd. The solves are matrix-free iterations, except on small states
whose query needs many solves, where J per sample is formed and LU-factored once
(:class:`DenseSolve`: at most ``DENSE_MAX_ENTRIES`` numbers); no m x m x n tensor is ever
formed, and no autograd graph outlives a query, so memory does not grow with iteration counts.

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
batch (:class:`LineStack`), each line's chain only as long as its terms need (heat's
u_t - kappa u_xx: order 1 along t, 2 along x), and the loss combines the chains. Order i's
tangent and adjoint solves run on the rows of the lines that reach order i, and the adjoint
of z* on one copy of the batch: every line holds the same z*, so the same J, and by
linearity the copies' right-hand sides add up. Rows of a line past its order hold zero
tangents and get zero adjoints exactly (the loss does not read them and no higher order
couples into them), so leaving them out of the solves changes no digit of the answer.
"""

from __future__ import annotations

import torch

from deqbench.queries import QUERIES
from deqbench.strategies._implicit_layer import ImplicitLayer
from deqbench.strategies._linearization import (
    DENSE_MAX_ENTRIES,
    DenseSolve,
    Linearization,
    grad_retained,
    grad_with_graph,
)
from deqbench.strategies.base import Strategy
from deqbench.tolerances import solver_tol


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
            (pairing,) = grad_with_graph(pairing, tau)
            derivatives.append(grad_with_graph(pairing, cotangent)[0])
    return derivatives


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


class LineStack:
    """Directions stacked along the batch, each with the Taylor order its chain needs, and
    the linearizations of f that the solves of each order run on.

    Lines are ranked by order, highest first, so that the lines reaching order i are a
    prefix of the stacked rows (``rows[i]`` of them); ``rows[0]`` is one copy of the batch,
    where the adjoint of z* is solved. Line ``l`` (its index in ``orders``) holds the stacked
    samples ``slot(l)``. One linearization per distinct row count, built when first needed.
    """

    def __init__(self, f, theta, x, z, directions=(), orders=(0,)):
        self.f, self.theta, self.batch = f, theta, x.shape[0]
        self.orders, self.order = tuple(orders), max(orders)
        ranked = sorted(range(len(orders)), key=lambda line: -orders[line])
        self.position = {line: p for p, line in enumerate(ranked)}
        copies = len(orders)
        self.x, self.z = (t if copies == 1 else t.repeat(copies, *[1] * (t.dim() - 1)) for t in (x, z))
        self.e = None
        if len(directions):
            self.e = torch.stack([directions[line] for line in ranked]).repeat_interleave(self.batch, dim=0)
        reaching = [sum(o >= i for o in orders) for i in range(1, self.order + 1)]
        self.rows = [self.batch] + [self.batch * lines for lines in reaching]
        self._linear: dict[int, Linearization] = {}
        self.dense: DenseSolve | None = None  # set where the solves are direct

    def linear_steps(self, forward_steps: int, gradient: bool) -> float:
        """The batch-sized matvecs the tangent (and, for a gradient, adjoint) solves would
        take by plain iteration, each about as many steps as the forward solve took."""
        tangents = sum(self.rows[1:]) / self.batch
        return forward_steps * (2 * tangents + 1 if gradient else tangents)

    def linear(self, i: int) -> Linearization:
        """f linearized on order i's rows (J does not depend on e; f_x[e] there does)."""
        rows = self.rows[i]
        if rows not in self._linear:
            e = None if self.e is None else self.e[:rows]
            self._linear[rows] = Linearization(self.f, self.theta, self.x[:rows], self.z[:rows], e)
        return self._linear[rows]

    def slot(self, line: int) -> slice:
        start = self.position[line] * self.batch
        return slice(start, start + self.batch)

    def restrict(self, i: int, rhs: torch.Tensor) -> torch.Tensor:
        """An adjoint right-hand side on all stacked rows, to order i's solve: its prefix,
        or for z* (i = 0) the sum over the copies."""
        if i > 0:
            return rhs[: self.rows[i]]
        return rhs.reshape(-1, self.batch, *rhs.shape[1:]).sum(dim=0)

    def pad(self, v: torch.Tensor) -> torch.Tensor:
        """A solve's answer on its rows, with zeros on the other stacked rows."""
        missing = self.z.shape[0] - v.shape[0]
        return v if missing == 0 else torch.cat([v, v.new_zeros(missing, *v.shape[1:])])


class Analytic(Strategy):
    name = "analytic"
    description = "linear solves with (I - J) and its transpose (iterated, or LU on small states); jvp/vjp"
    supported_queries = frozenset(QUERIES)
    exact_queries = frozenset(QUERIES)
    # The linear solves contract at the forward's rate: on the zoo's layers Anderson saves
    # almost no steps there (tanh m=256: 42 vs 46 at rho=1.5) and costs more per step, so
    # plain iteration is the default, as for iterative-backward. `b_solver="anderson"` for
    # layers that contract slowly. With plain iteration, a small state whose query needs
    # many solves gets direct ones instead (`factor_if_cheaper`).
    default_b_solver = "fixed_point"
    default_f_solver = "fixed_point"

    def layer(self, problem, direct: bool = True):
        """z*(theta, x) as a torch function autograd differentiates exactly at every order
        (for training with `analytic`, and for gradcheck/gradgradcheck). ``direct``: solve
        the backward systems of a small state by LU (see the implicit layer's ``_Solves``);
        False: always iterate."""
        return ImplicitLayer(self, problem, direct)

    # --------------------------------------------------------------- pieces
    def fixed_point(self, problem, theta, x):
        with torch.no_grad():
            return self.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())

    def tangents(self, problem, stack: LineStack) -> list[torch.Tensor]:
        """v_1 .. v_k along the stack's lines: one linear solve per order, v_i = J v_i + r_i,
        on the rows of the lines that reach order i. The first right-hand side comes from
        the linearization, the others from the Taylor map."""
        tangents = []
        for i in range(1, stack.order + 1):
            rows = stack.rows[i]
            if i == 1:
                rhs = stack.linear(1).input_jvp()
            else:
                lower = [v[:rows] for v in tangents]
                x, e, z = stack.x[:rows], stack.e[:rows], stack.z[:rows]
                rhs = taylor_map(problem.f, stack.theta, x, e, z, lower, order=i)[-1].detach()
            tangents.append(self.linear_solve(stack, i, rhs, transpose=False))
        return tangents

    def linear_solve(self, stack: LineStack, i: int, rhs: torch.Tensor, transpose: bool) -> torch.Tensor:
        """y = A y + rhs on order i's rows, A = J (a tangent) or J^T (an adjoint): by the
        stack's dense factors where it has them, else by the backward solver."""
        if stack.dense is not None:
            tol = solver_tol(rhs.dtype) if self.b_tol is None else self.b_tol
            y, stats = stack.dense.solve(rhs, transpose, tol)
            self.solves.append(stats)
            return y
        linear = stack.linear(i)
        apply = linear.vjp if transpose else linear.jvp
        return self.solve_backward(lambda y: apply(y) + rhs, rhs)

    def factor_if_cheaper(self, stack: LineStack, gradient: bool) -> None:
        """Direct solves (:class:`DenseSolve`) for this query where plain iteration is the
        backward solver, the state is a small vector, and the linear solves would take at
        least 2m matvecs (forming J takes m, its LU about m / 3 more): the PDE queries at
        m = 32, not grad, and nothing at the large preset."""
        z = stack.z
        if self.b_solver != "fixed_point" or z.dim() != 2:
            return
        m = z.shape[1]
        forward_steps = next(s.iterations for s in self.solves if s.phase == "forward")
        if stack.batch * m * m > DENSE_MAX_ENTRIES or stack.linear_steps(forward_steps, gradient) < 2 * m:
            return
        tol = solver_tol(z.dtype) if self.b_tol is None else self.b_tol
        dense, stats = DenseSolve.of(stack.linear(0), max(tol, 1e3 * torch.finfo(z.dtype).eps))
        if dense is not None:
            stack.dense = dense
            self.solves.append(stats)

    def loss_gradient(self, problem, loss, stack: LineStack, tangents):
        """d loss(theta, z*, v_1..v_k)/d theta by back substitution through the Taylor map.

        Reverse mode uses plain autograd on graphs built once (of f, of the Taylor map and of
        the loss) and reused by every solver step, so what autograd saves does not grow
        with iterations (and ``saved_tensors_hooks``, which torch.func.vjp refuses, see it).
        The Taylor map of orders 0 and 1 is the linearization's own graph; from order 2 on
        it is built anew at the solved tangents (zero-padded to every stacked row).
        """
        k = stack.order
        top = stack.linear(min(k, 1))  # every stacked row
        theta = top.theta
        with torch.enable_grad():
            state = [top.z, *(stack.pad(v).requires_grad_(True) for v in tangents)]
            loss_theta, loss_state = _loss_partials(loss(theta, *state), list(theta.values()), state)
            if k == 0:
                taylor = [top.f_z]
            elif k == 1:
                taylor = top.first_order_map(tangents[0])
            else:
                taylor = taylor_map(problem.f, theta, stack.x, stack.e, state[0], state[1:])

        # Back substitution, each order's output of the Taylor map pushed back once: as soon
        # as adjoint j is solved, one reverse pass of <a_j, taylor_j> gives its coupling into
        # every lower state and its share of the parameter gradient (taylor_j depends on
        # states 0..j only; its own state's derivative is the solve's J^T). A pass per
        # coupling would cross the highest order's graph, the largest, k + 1 times.
        parameters = list(theta.values())
        rhs, from_state = list(loss_state), [None] * len(parameters)
        for j in range(k, -1, -1):
            adjoint = stack.pad(self.linear_solve(stack, j, stack.restrict(j, rhs[j]), transpose=True))
            pushed = grad_retained(taylor[j], [*state[:j], *parameters], adjoint)
            for i in range(j):
                rhs[i] = rhs[i] + pushed[i]
            from_state = [p if q is None else q + p for q, p in zip(from_state, pushed[j:], strict=True)]
        return {
            name: (b if a is None else a + b).detach()
            for name, a, b in zip(theta, loss_theta, from_state, strict=True)
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
        """z*, its first ``order`` derivatives along the query's direction, and the stack."""
        theta, x = problem.theta, problem.x
        z = self.fixed_point(problem, theta, x)
        directions = [problem.direction(query)] if order else []
        stack = LineStack(problem.f, theta, x, z, directions, (order,))
        self.factor_if_cheaper(stack, gradient=query == "grad")
        return [z, *self.tangents(problem, stack)], stack

    @torch.no_grad()
    def grad(self, problem):
        x = problem.x
        _, stack = self._along(problem, "grad", 0)
        loss = lambda th, z_: problem.data_loss(th, x, z_)  # noqa: E731
        return self.loss_gradient(problem, loss, stack, [])

    @torch.no_grad()
    def pinn_grad(self, problem):
        return self._physics_gradient(problem, "pinn_grad")

    @torch.no_grad()
    def pinn2_grad(self, problem):
        return self._physics_gradient(problem, "pinn2_grad")

    def _physics_gradient(self, problem, query):
        """The physics loss's gradient: Taylor chains along the polarization plan's lines,
        each as long as its terms need, stacked along the batch (:class:`LineStack`)."""
        physics_loss, plan = problem.physics_query(query)[0], problem.partials_plan(query)
        theta, x = problem.theta, problem.x
        z = self.fixed_point(problem, theta, x)
        directions = plan.direction_vectors(problem.directions)
        stack = LineStack(problem.f, theta, x, z, directions, plan.line_orders)
        self.factor_if_cheaper(stack, gradient=True)
        tangents = self.tangents(problem, stack)

        def loss(th, z_, *vs):
            chains = [[v[stack.slot(line)] for v in vs] for line in range(len(plan.lines))]
            return physics_loss(th, x, z_[: stack.batch], plan.combine(chains))

        return self.loss_gradient(problem, loss, stack, tangents)

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
        z = self.fixed_point(problem, theta, problem.x)
        stack = LineStack(problem.f, theta, problem.x, z, directions, (2,) * len(pairs))
        self.factor_if_cheaper(stack, gradient=False)
        second = self.tangents(problem, stack)[-1].reshape(len(pairs), batch, -1)
        pure = {i: second[p] for p, (i, j) in enumerate(pairs) if i == j}
        hessian = torch.empty(batch, second.shape[-1], n, n, dtype=problem.dtype, device=problem.device)
        for p, (i, j) in enumerate(pairs):
            value = pure[i] if i == j else (second[p] - pure[i] - pure[j]) / 2
            hessian[:, :, i, j] = value
            hessian[:, :, j, i] = value
        return {"d2z_dx2": hessian}
