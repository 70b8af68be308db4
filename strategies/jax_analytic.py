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

    def tangents(self, problem, theta, x, e, z, order, linear):
        """v_1 .. v_order along e: one linear solve each, v_i = J v_i + r_i."""
        jnp = import_jax().numpy
        tangents = []
        for _ in range(order):
            rhs = taylor_map(problem.f, theta, x, e, z, [*tangents, jnp.zeros_like(z)])[-1]
            tangents.append(self.solve_backward(lambda v, rhs=rhs: linear.jvp(v) + rhs, rhs))
        return tangents

    def loss_gradient(self, problem, loss, theta, x, e, z, tangents, linear):
        """d loss(theta, z*, v_1..v_k)/d theta by back substitution through the Taylor map.

        One vjp of the Taylor map (built once, at the solved state) serves every step: the
        coupling of adjoint j to the higher orders, and at the end the parameter gradient.
        Each call asks for all its cotangents; under jit XLA keeps only those used.
        """
        jax = import_jax()
        state = (z, *tangents)
        k = len(tangents)
        loss_theta, *loss_state = jax.grad(loss, argnums=tuple(range(k + 2)))(theta, *state)
        _, map_vjp = jax.vjp(lambda th, *s: taylor_map(problem.f, th, x, e, s[0], s[1:]), theta, *state)

        adjoints = [jax.numpy.zeros_like(z)] * (k + 1)
        for j in range(k, -1, -1):
            rhs = loss_state[j]
            if j < k:  # coupling from the higher orders, already solved
                rhs = rhs + map_vjp(adjoints)[1 + j]
            adjoints[j] = self.solve_backward(lambda a, rhs=rhs: linear.vjp(a) + rhs, rhs)
        return tree_add(loss_theta, map_vjp(adjoints)[0])

    def along(self, problem, theta, x, e, order):
        """z*, its first ``order`` derivatives along e, and J there."""
        z = self.fixed_point(problem, theta, x)
        linear = Linearization(problem.f, theta, x, z)
        return [z, *self.tangents(problem, theta, x, e, z, order, linear)], linear

    def physics_gradient(self, problem, theta, x, query):
        """As torch `analytic`: Taylor chains along the polarization plan's lines, stacked
        along the batch (line l holds samples l * batch .. (l + 1) * batch - 1), combined
        into the named partials inside the loss."""
        jnp = import_jax().numpy
        physics_loss, plan = problem.physics_query(query)[0], problem.partials_plan(query)
        batch, lines = x.shape[0], len(plan.lines)
        stacked_x = jnp.tile(x, (lines, 1))
        e = jnp.repeat(jnp.stack(plan.direction_vectors(problem.directions)), batch, axis=0)
        z = jnp.tile(self.fixed_point(problem, theta, x), (lines, 1))
        linear = Linearization(problem.f, theta, stacked_x, z)
        tangents = self.tangents(problem, theta, stacked_x, e, z, plan.order, linear)

        def loss(th, z_, *vs):
            chains = [[v[line * batch : (line + 1) * batch] for v in vs] for line in range(lines)]
            return physics_loss(th, x, z_[:batch], plan.combine(chains))

        return self.loss_gradient(problem, loss, theta, stacked_x, e, z, tangents, linear)

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
        (z,), linear = self.along(problem, theta, x, e, 0)
        loss = lambda th, z_: problem.data_loss(th, x, z_)  # noqa: E731
        return self.loss_gradient(problem, loss, theta, x, e, z, [], linear)

    def pinn_grad(self, problem, theta, x):
        return self.physics_gradient(problem, theta, x, "pinn_grad")

    def pinn2_grad(self, problem, theta, x):
        return self.physics_gradient(problem, theta, x, "pinn2_grad")

    def hessian(self, problem, theta, x):
        """All second derivatives at once by polarisation, batched over direction pairs.

        H(e_i, e_j) = (D2(e_i + e_j) - D2(e_i) - D2(e_j)) / 2, where D2(e) is d2z*/dtau2
        along e; the n(n+1)/2 directions are stacked along the batch, so that one forward
        solve, one linearization and two tangent solves serve them all.
        """
        jnp = import_jax().numpy
        batch, n = x.shape
        pairs = [(i, j) for i in range(n) for j in range(i, n)]
        eye = jnp.eye(n, dtype=x.dtype)
        directions = jnp.stack([eye[i] + eye[j] if i != j else eye[i] for i, j in pairs])
        stacked_x = jnp.tile(x, (len(pairs), 1))
        e = jnp.repeat(directions, batch, axis=0)
        z = jnp.tile(self.fixed_point(problem, theta, x), (len(pairs), 1))
        linear = Linearization(problem.f, theta, stacked_x, z)
        second = self.tangents(problem, theta, stacked_x, e, z, 2, linear)[-1].reshape(len(pairs), batch, -1)
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
