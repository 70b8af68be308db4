"""The seven queries as plain JAX transforms of one function ``z*(theta, x)``.

`jax-unrolled` and `jax-implicit` differ only in how they make the fixed point a JAX
function (:meth:`JaxAutodiffStrategy.fixed_point`); every query is then what a JAX user
writes: ``jax.jvp`` (nested for higher orders) for derivatives along an input direction,
``jax.grad`` of the loss for parameter gradients, ``jax.jacfwd`` twice for the input Hessian.

Derivatives along a direction ``e`` are taken along the path ``tau -> z*(theta, x + tau e)``:
every sample moves by the same ``tau e``, and since samples are independent, the derivative
in ``tau`` of sample b is the directional derivative of z*_b in its own input. A physics
loss's named partials are nested ``jax.jvp`` calls down the multi-index, one direction a
level (u_txx = D_t D_x D_x u), as a JAX PINN is written. The input
Hessian uses the same trick with a shared offset ``u`` in R^n: ``d2 z*(theta, x + u)/du2``
is (batch, m, n, n), with n^2 tangents, not the (batch n)^2 of a Hessian in ``x`` itself.

JAX is imported inside the functions: the registry imports this module in torch-only runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from deqbench.backends import import_jax
from deqbench.queries import QUERIES
from deqbench.strategies._jax import JaxStrategy

FixedPoint = Callable[[dict, Any], Any]  # (theta, x) -> z*, a JAX-differentiable function


def along(z_star: FixedPoint, theta, x, e, order: int) -> list:
    """[z*, dz*/dtau, ..., d^order z*/dtau^order] at tau = 0 on the path x + tau e.

    Nested ``jax.jvp``: each level differentiates the list of the level below and appends
    the derivative of its last entry.
    """
    jax = import_jax()

    def derivatives(k: int):
        if k == 0:
            return lambda tau: [z_star(theta, x + tau * e)]
        inner = derivatives(k - 1)

        def nested(tau):
            primal, tangent = jax.jvp(inner, (tau,), (jax.numpy.ones_like(tau),))
            return [*primal, tangent[-1]]

        return nested

    return derivatives(order)(jax.numpy.zeros((), x.dtype))


def partial(z_star: FixedPoint, theta, x, directions: list):
    """D_{e_1} .. D_{e_k} z*(theta, x): one ``jax.jvp`` a direction, innermost first, each
    moving every sample's input along its own copy of e."""
    jax = import_jax()

    def derivative(function, e):
        return lambda x_: jax.jvp(function, (x_,), (jax.numpy.broadcast_to(e, x_.shape),))[1]

    function = lambda x_: z_star(theta, x_)  # noqa: E731
    for e in directions:
        function = derivative(function, e)
    return function(x)


def reverse_partial(z_star: FixedPoint, theta, x, directions: list):
    """The same partial by reverse mode, as a PINN user with a reverse-only library writes
    it: per-sample offsets s along e, and ``jax.jacrev`` of the batch-summed output in s
    (sample b depends on s_b alone, so column b is its derivative: m reverse passes a level)."""
    jax = import_jax()

    def derivative(function, e):
        def along_e(x_):
            offsets = jax.numpy.zeros(x_.shape[0], x_.dtype)
            summed = lambda s: function(x_ + s[:, None] * e).sum(axis=0)  # noqa: E731
            return jax.jacrev(summed)(offsets).T

        return along_e

    function = lambda x_: z_star(theta, x_)  # noqa: E731
    for e in directions:
        function = derivative(function, e)
    return function(x)


def input_hessian(z_star: FixedPoint, theta, x):
    """d2 z*_i / dx_k dx_l per sample, (batch, m, n, n): forward over forward mode (n is
    small; reverse mode would need one pass per state entry of every sample)."""
    jax = import_jax()
    shifted = lambda u: z_star(theta, x + u)  # noqa: E731 - u: one offset shared by all samples
    return jax.jacfwd(jax.jacfwd(shifted))(jax.numpy.zeros(x.shape[1], x.dtype))


class JaxAutodiffStrategy(JaxStrategy):
    """Abstract: a subclass provides :meth:`fixed_point`; the queries follow from it."""

    supported_queries = frozenset(QUERIES)
    exact_queries = frozenset(QUERIES)
    #: How a physics loss's partials are taken: nested ``jax.jvp`` ("forward"), or nested
    #: ``jax.jacrev`` ("reverse": for a fixed point with a custom_vjp and no tangent rule).
    input_mode: ClassVar[str] = "forward"

    def fixed_point(self, problem) -> FixedPoint:
        """z*(theta, x) of ``problem`` as a function JAX differentiates to every order."""
        raise NotImplementedError

    # -------------------------------------------------------------- queries
    def forward(self, problem, theta, x):
        z = self.fixed_point(problem)(theta, x)
        return {"z_star": z, "output": problem.output(theta, z)}

    def jvp(self, problem, theta, x):
        _, dz = along(self.fixed_point(problem), theta, x, problem.direction("jvp"), 1)
        return {"dz_dt": dz}

    def jvp2(self, problem, theta, x):
        *_, d2z = along(self.fixed_point(problem), theta, x, problem.direction("jvp2"), 2)
        return {"d2z_dt2": d2z}

    def grad(self, problem, theta, x):
        z_star = self.fixed_point(problem)
        return import_jax().grad(lambda th: problem.data_loss(th, x, z_star(th, x)))(theta)

    def pinn_grad(self, problem, theta, x):
        return self._physics_gradient(problem, theta, x, "pinn_grad")

    def pinn2_grad(self, problem, theta, x):
        return self._physics_gradient(problem, theta, x, "pinn2_grad")

    def _physics_gradient(self, problem, theta, x, query):
        z_star, (loss, partials) = self.fixed_point(problem), problem.physics_query(query)
        take_partial = reverse_partial if self.input_mode == "reverse" else partial

        def physics_loss(th):
            d = {
                name: take_partial(z_star, th, x, [problem.directions[direction] for direction in index])
                for name, index in partials.items()
            }
            return loss(th, x, z_star(th, x), d)

        return import_jax().grad(physics_loss)(theta)

    def hessian(self, problem, theta, x):
        return {"d2z_dx2": input_hessian(self.fixed_point(problem), theta, x)}
