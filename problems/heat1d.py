"""`heat1d`: a PIDEQ on the heat equation, with its closed-form solution.

    u_t = kappa u_xx     on (t, x) in [0, 1] x [0, 1]
    u(0, x) = sin(pi x),  u(t, 0) = u(t, 1) = 0
    u(t, x) = sin(pi x) exp(-kappa pi^2 t)          (kappa = 0.1: u(1, .) keeps 37% of its size)

The model, samples and losses are those of :mod:`deqbench.problems.pde`:

- ``pinn_grad``: the residual ``r = u_t - kappa u_xx`` (partials ``t``, ``xx``) on the
  interior points, plus ``(u - g)^2`` on the points at t = 0, x = 0 and x = 1;
- ``pinn2_grad``: gPINN, ``r^2 + r_x^2`` with ``r_x = u_tx - kappa u_xxx`` (partials ``t``,
  ``xx``, ``tx``, ``xxx``: third order), plus the same boundary term.

``jvp`` differentiates along t.
"""

import math

from deqbench.problems.pde import TimeSpacePIDEQ, named, sized

PI = math.pi


class Heat1D(TimeSpacePIDEQ):
    name = "heat1d"
    description = "PIDEQ on u_t = kappa u_xx, u = sin(pi x) exp(-kappa pi^2 t); gPINN second loss"
    presets = sized(kappa=0.1)
    physics_partials = named("t", "xx")
    physics2_partials = named("t", "xx", "tx", "xxx")

    def solution(self, x):
        t, space = x[:, 0:1], x[:, 1:2]
        return self.xp.sin(PI * space) * self.xp.exp(-self.kappa * PI**2 * t)

    def initial_condition(self, space):
        return self.xp.sin(PI * space)

    def residual(self, x, u, du):
        return du["t"] - self.kappa * du["xx"]

    def gpinn_residual(self, x, u, du):
        return du["tx"] - self.kappa * du["xxx"]
