"""`jax-fixed-point`: the public layer :func:`deqbench.jax.fixed_point`, verified as a user uses it.

The problem's layer ``f(theta, x, z)`` goes to ``deqbench.jax.fixed_point`` as it is, and
every query is a plain JAX transform of the result
(:class:`~deqbench.strategies._jax_autodiff.JaxAutodiffStrategy`: nested ``jax.jvp`` for
derivatives along inputs and a physics loss's partials, ``jax.grad`` for parameter
gradients, ``jax.jacfwd`` twice for the input Hessian), jit-compiled. The layer's solve
statistics come back through its ``callback`` argument, so a solve short of its tolerance
is flagged in the results as every other strategy's is. Every query is claimed exact.

JAX is imported inside functions only: the registry imports this module in torch-only runs.
"""

from __future__ import annotations

from deqbench.strategies._jax_autodiff import FixedPoint, JaxAutodiffStrategy


class JaxFixedPoint(JaxAutodiffStrategy):
    name = "jax-fixed-point"
    description = "deqbench.jax.fixed_point, the public JAX layer, through plain JAX transforms (any order)"
    # jax-implicit's defaults (the same rule, by measurement there): Anderson forward,
    # plain iteration for the linear solves. They are also the layer's own defaults.
    default_f_solver = "anderson"
    default_b_solver = "fixed_point"

    def fixed_point(self, problem) -> FixedPoint:
        from deqbench.jax import fixed_point

        f, z0 = problem.f, problem.z_init()
        settings = {
            "solver": self.f_solver,
            "tol": self.f_tol,
            "max_iter": self.f_max_iter,
            "backward_solver": self.b_solver,
            "backward_tol": self.b_tol,
            "backward_max_iter": self.b_max_iter,
            # self.solves is a new list every run: look it up when the statistics arrive
            "callback": lambda stats: self.solves.append(stats),
        }
        return lambda theta, x: fixed_point(f, theta, x, z0, **settings)
