"""`jax-analytic`: the `analytic` strategy in JAX, jit-compiled (docs/explanations/mathematics.md).

Implicit differentiation of the tangent DEQ, matrix-free, as `analytic` does it in torch:
every derivative is a linear fixed-point solve with ``J = df/dz`` at the fixed point
(tangents, ``v = J v + r``) or its transpose (adjoints, ``a = a J + u``), and every
right-hand side is a directional derivative of ``f``. No m x m matrix is formed, and the
solves are never differentiated through (each ``lax.while_loop`` runs on values only), so
memory does not grow with iteration counts.

The mathematics is `analytic`'s, word for word (the module docstring of
``strategies/analytic.py``): tangents along e from the *Taylor map* of f, one linear solve
``v_i = J v_i + r_i`` per order; for a gradient of a loss on (z*, v_1 .. v_k), the adjoint
of the block lower-triangular Taylor map solved block by block from the highest order down
(k + 1 solves), then the parameter gradient from one vjp of the Taylor map in theta.

**Taylor mode by nested jvp, not jet.** The Taylor map is k nested ``jax.jvp`` calls in a
scalar tau rather than one ``jax.experimental.jet`` pass. Measured on tanh and vanderpol
m=256, batch 128, float64, one thread: the queries run equally fast either way (the solves
dominate: every query costs about the same per solver iteration), but the map alone is
about twice as fast nested at orders 1 and 2, the only orders any query propagates
(pinn2_grad's third order comes from the reverse pass), its vjp is on par at order 2, and
the compiled programs are smaller. jet overtakes only from order 3 on. What settles it is
generality: ``jax.jvp`` differentiates every primitive and honours ``custom_jvp`` rules,
while jet has rules for a subset of primitives (``jnp.arctan``: KeyError) and fails on
``custom_jvp`` functions (``jax.nn.relu``, ``jax.nn.softplus``: a leaked tracer), which a
user's layer may well use.

A physics loss's polarization lines are stacked along the batch as in `analytic`
(:class:`LineStack`): each line's chain only as long as its terms need, order i's tangent
and adjoint solves on the rows of the lines that reach order i, and z*'s adjoint on one copy
of the batch (the copies share J, so their right-hand sides add up); the rows left out
would hold zero tangents and zero adjoints exactly.

JAX is imported inside functions only: the registry imports every strategy module, also in
torch-only runs.
"""

from __future__ import annotations

from deqbench.backends import import_jax
from deqbench.queries import QUERIES
from deqbench.strategies._jax import JaxStrategy


def taylor_map(f, theta, x, e, z, tangents):
    """[f, d/dtau f, ..., d^k/dtau^k f] at tau = 0 along (x + tau e, z + sum tau^i/i! v_i).

    k nested ``jax.jvp`` calls in the scalar tau (see the module docstring for why not
    ``jet``); the innermost function is the path itself, each level adds one derivative.
    """
    jnp = import_jax().numpy

    def path(tau):
        z_tau, coefficient = z, 1.0
        for i, v in enumerate(tangents, start=1):
            coefficient = coefficient * tau / i
            z_tau = z_tau + coefficient * v
        return (f(theta, x + tau * e, z_tau),)

    tau = jnp.zeros((), dtype=z.dtype)
    return list(_derivatives(path, len(tangents))(tau))


def _derivatives(path, order):
    """tau -> (path, d/dtau path, ..., d^order/dtau^order path), by nested jvp."""
    if order == 0:
        return path
    jax = import_jax()
    inner = _derivatives(path, order - 1)

    def derivatives(tau):
        primal, tangent = jax.jvp(inner, (tau,), (jax.numpy.ones_like(tau),))
        return (*primal, tangent[-1])

    return derivatives


class Linearization:
    """J v and J^T a at a fixed point, f linearized once for all solver steps.

    ``jax.linearize`` (a jvp in z, partially evaluated) and ``jax.vjp`` evaluate f's
    nonlinear part once, here; inside a solver's ``while_loop`` each step is then one
    linear pass over the saved residuals. Both are built eagerly, in the caller's trace: a
    linearization first made inside a loop body would leave that body's tracers behind
    for later solves. A query that uses only one of them pays for the other in tracing
    only; XLA drops what no output needs.
    """

    def __init__(self, f, theta, x, z):
        jax = import_jax()
        f_z = lambda z_: f(theta, x, z_)  # noqa: E731
        _, self._jvp = jax.linearize(f_z, z)
        _, self._vjp = jax.vjp(f_z, z)

    def jvp(self, v):
        return self._jvp(v)

    def vjp(self, a):
        return self._vjp(a)[0]


class LineStack:
    """Directions stacked along the batch, highest Taylor order first, as in `analytic`:
    ``rows[i]`` stacked rows reach order i (a prefix), ``rows[0]`` is one copy of the batch;
    one linearization of f per distinct row count, built eagerly in the caller's trace."""

    def __init__(self, f, theta, x, z, directions, orders):
        jnp = import_jax().numpy
        self.batch, self.order = x.shape[0], max(orders)
        ranked = sorted(range(len(orders)), key=lambda line: -orders[line])
        self.position = {line: p for p, line in enumerate(ranked)}
        copies = len(orders)
        self.x, self.z = (jnp.tile(t, (copies,) + (1,) * (t.ndim - 1)) for t in (x, z))
        self.e = jnp.repeat(jnp.stack([directions[line] for line in ranked]), self.batch, axis=0)
        reaching = [sum(o >= i for o in orders) for i in range(1, self.order + 1)]
        self.rows = [self.batch] + [self.batch * lines for lines in reaching]
        self._linear = {
            rows: Linearization(f, theta, self.x[:rows], self.z[:rows]) for rows in set(self.rows)
        }

    def linear(self, i: int) -> Linearization:
        return self._linear[self.rows[i]]

    def slot(self, line: int) -> slice:
        start = self.position[line] * self.batch
        return slice(start, start + self.batch)

    def restrict(self, i: int, rhs):
        """An adjoint right-hand side on all stacked rows, to order i's solve: its prefix,
        or for z* (i = 0) the sum over the copies."""
        if i > 0:
            return rhs[: self.rows[i]]
        return rhs.reshape(-1, self.batch, *rhs.shape[1:]).sum(axis=0)

    def pad(self, v):
        """A solve's answer on its rows, with zeros on the other stacked rows."""
        jnp = import_jax().numpy
        missing = self.z.shape[0] - v.shape[0]
        return v if missing == 0 else jnp.concatenate([v, jnp.zeros((missing, *v.shape[1:]), v.dtype)])


def tree_add(a, b):
    """Entry-wise sum of two pytrees of the same structure (dicts of parameters)."""
    jax = import_jax()
    return jax.tree.map(jax.numpy.add, a, b)


class JaxAnalytic(JaxStrategy):
    name = "jax-analytic"
    description = "analytic in JAX: nested-jvp right-hand sides, linear solves with J and J^T; jit-compiled"
    supported_queries = frozenset(QUERIES)
    exact_queries = frozenset(QUERIES)
    # As for torch `analytic`: the linear solves contract at the forward's rate, where
    # Anderson saves almost no steps and costs more per step; the forward too (tanh m=256,
    # tol 1e-10: 21 Anderson steps against 22 plain ones; grad 0.79x, pinn_grad 0.85x as long).
    default_b_solver = "fixed_point"
    default_f_solver = "fixed_point"

    # --------------------------------------------------------------- pieces
    def fixed_point(self, problem, theta, x):
        return self.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())

    def tangents(self, problem, theta, stack: LineStack):
        """v_1 .. v_k along the stack's lines, order i on the rows that reach it."""
        jnp = import_jax().numpy
        tangents = []
        for i in range(1, stack.order + 1):
            rows, linear = stack.rows[i], stack.linear(i)
            lower = [v[:rows] for v in tangents]
            x, e, z = stack.x[:rows], stack.e[:rows], stack.z[:rows]
            rhs = taylor_map(problem.f, theta, x, e, z, [*lower, jnp.zeros_like(z)])[-1]
            step = lambda v, rhs=rhs, linear=linear: linear.jvp(v) + rhs  # noqa: E731
            tangents.append(self.solve_backward(step, rhs))
        return tangents

    def loss_gradient(self, problem, loss, theta, stack: LineStack, tangents):
        """d loss(theta, z*, v_1..v_k)/d theta by back substitution through the Taylor map.

        One vjp of the Taylor map (built once, at the solved state, the tangents zero-padded
        to every stacked row) serves every step: the coupling of adjoint j to the higher
        orders, and at the end the parameter gradient. Adjoint j is solved on order j's
        rows. Each call asks for all its cotangents; under jit XLA keeps only those used.
        """
        jax = import_jax()
        state = (stack.z, *(stack.pad(v) for v in tangents))
        k = len(tangents)
        loss_theta, *loss_state = jax.grad(loss, argnums=tuple(range(k + 2)))(theta, *state)
        taylor = lambda th, *s: taylor_map(problem.f, th, stack.x, stack.e, s[0], s[1:])  # noqa: E731
        _, map_vjp = jax.vjp(taylor, theta, *state)

        adjoints = [jax.numpy.zeros_like(stack.z)] * (k + 1)
        for j in range(k, -1, -1):
            rhs = loss_state[j]
            if j < k:  # coupling from the higher orders, already solved
                rhs = rhs + map_vjp(adjoints)[1 + j]
            rhs, linear = stack.restrict(j, rhs), stack.linear(j)
            step = lambda a, rhs=rhs, linear=linear: linear.vjp(a) + rhs  # noqa: E731
            adjoints[j] = stack.pad(self.solve_backward(step, rhs))
        return tree_add(loss_theta, map_vjp(adjoints)[0])

    def along(self, problem, theta, x, e, order):
        """z*, its first ``order`` derivatives along e, and the one-line stack."""
        z = self.fixed_point(problem, theta, x)
        stack = LineStack(problem.f, theta, x, z, [e], (order,))
        return [z, *self.tangents(problem, theta, stack)], stack

    def physics_gradient(self, problem, theta, x, query):
        """As torch `analytic`: Taylor chains along the polarization plan's lines, each as
        long as its terms need, stacked along the batch (:class:`LineStack`), combined into
        the named partials inside the loss."""
        physics_loss, plan = problem.physics_query(query)[0], problem.partials_plan(query)
        z = self.fixed_point(problem, theta, x)
        directions = plan.direction_vectors(problem.directions)
        stack = LineStack(problem.f, theta, x, z, directions, plan.line_orders)
        tangents = self.tangents(problem, theta, stack)

        def loss(th, z_, *vs):
            chains = [[v[stack.slot(line)] for v in vs] for line in range(len(plan.lines))]
            return physics_loss(th, x, z_[: stack.batch], plan.combine(chains))

        return self.loss_gradient(problem, loss, theta, stack, tangents)

    # -------------------------------------------------------------- queries
    def forward(self, problem, theta, x):
        z = self.fixed_point(problem, theta, x)
        return {"z_star": z, "output": problem.output(theta, z)}

    def jvp(self, problem, theta, x):
        return {"dz_dt": self.along(problem, theta, x, problem.direction("jvp"), 1)[0][-1]}

    def jvp2(self, problem, theta, x):
        return {"d2z_dt2": self.along(problem, theta, x, problem.direction("jvp2"), 2)[0][-1]}

    def grad(self, problem, theta, x):
        e = problem.direction("jvp")  # unused: the Taylor map of order 0 is f itself
        _, stack = self.along(problem, theta, x, e, 0)
        loss = lambda th, z_: problem.data_loss(th, x, z_)  # noqa: E731
        return self.loss_gradient(problem, loss, theta, stack, [])

    def pinn_grad(self, problem, theta, x):
        return self.physics_gradient(problem, theta, x, "pinn_grad")

    def pinn2_grad(self, problem, theta, x):
        return self.physics_gradient(problem, theta, x, "pinn2_grad")

    def hessian(self, problem, theta, x):
        """All second derivatives at once by polarisation, batched over direction pairs.

        H(e_i, e_j) = (D2(e_i + e_j) - D2(e_i) - D2(e_j)) / 2, where D2(e) is d2z*/dtau2
        along e; the n(n+1)/2 directions are stacked along the batch, so that one forward
        solve and two tangent solves serve them all.
        """
        jnp = import_jax().numpy
        batch, n = x.shape
        pairs = [(i, j) for i in range(n) for j in range(i, n)]
        eye = jnp.eye(n, dtype=x.dtype)
        directions = jnp.stack([eye[i] + eye[j] if i != j else eye[i] for i, j in pairs])
        z = self.fixed_point(problem, theta, x)
        stack = LineStack(problem.f, theta, x, z, directions, (2,) * len(pairs))
        second = self.tangents(problem, theta, stack)[-1].reshape(len(pairs), batch, -1)
        return {"d2z_dx2": polarized(second, pairs, n)}


def polarized(second, pairs, n):
    """The (batch, m, n, n) Hessian from second derivatives along e_i (i = j) and e_i + e_j."""
    jnp = import_jax().numpy
    index = {pair: p for p, pair in enumerate(pairs)}

    def entry(i, j):
        i, j = min(i, j), max(i, j)
        if i == j:
            return second[index[i, i]]
        return (second[index[i, j]] - second[index[i, i]] - second[index[j, j]]) / 2

    return jnp.stack([jnp.stack([entry(i, j) for j in range(n)], axis=-1) for i in range(n)], axis=-2)
