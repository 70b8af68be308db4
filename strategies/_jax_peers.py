"""What the JAX peers (optimistix, jaxopt) share: a per-sample solve, vmapped, reporting its
statistics as deqbench's own JAX solves do.

A JAX user writes a DEQ for one sample and ``jax.vmap``s it over the batch; the libraries'
examples do the same, and their solvers and linear solves treat whatever they are given as
one system. So each peer solves each sample's fixed point (the layer on a batch of one)
under ``vmap``: the implicit linear systems are then m x m per sample, not (batch m)^2.

Statistics: the iterations and success flag the library returns (converged by *its*
stopping rule, which each peer's ``differences()`` states), and deqbench's residual (the
worst sample's ``|f(z) - z| / |f(z)|``, one more call of f, not differentiated), sent to
the host like every JAX solve's (:meth:`JaxStrategy.report`): a solve that stopped short is
flagged, and the residual reads the same as ours.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from deqbench.backends import import_jax
from deqbench.strategies._jax_autodiff import JaxAutodiffStrategy
from deqbench.strategies._peers import Peer


class SolveInfo(NamedTuple):
    """What :meth:`JaxStrategy.report` reads of a solve."""

    iterations: Any
    nfev: Any
    residual: Any
    converged: Any


def sample_layer(problem):
    """f for one sample: ``(theta, x_i, z_i) -> z_i``, the problem's layer on a batch of one."""
    return lambda theta, x, z: problem.f(theta, x[None], z[None])[0]


def relative_residual(layer, theta, x, z):
    """|f(z) - z| / |f(z)| of one sample, not differentiated (a statistic only)."""
    jnp = import_jax().numpy
    image = layer(theta, x, z)
    scale = jnp.maximum(jnp.linalg.norm(image), jnp.finfo(image.dtype).tiny)
    return import_jax().lax.stop_gradient(jnp.linalg.norm(image - z) / scale)


class JaxPeer(Peer, JaxAutodiffStrategy):
    """Abstract: a subclass provides :meth:`solve_sample`; z* is it, vmapped over samples."""

    def solve_sample(self, layer, theta, x, z0):
        """(z*, iterations, converged) of one sample with the library's solver."""
        raise NotImplementedError

    def fixed_point(self, problem):
        jax = import_jax()
        layer, z0 = sample_layer(problem), problem.z_init()
        tol = self.tolerances(str(z0.dtype))["f_tol"]

        def one(theta, x, z_init):
            z, iterations, converged = self.solve_sample(layer, theta, x, z_init)
            return z, iterations, converged, relative_residual(layer, theta, x, z)

        def z_star(theta, x):
            z, iterations, converged, residual = jax.vmap(one, in_axes=(None, 0, 0))(theta, x, z0)
            self.report("forward", self.f_solver, tol, SolveInfo(iterations, iterations, residual, converged))
            return z

        return z_star
