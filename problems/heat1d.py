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

from deqbench.problems.pde import CoordinatePIDEQ, named

PI = math.pi


class Heat1D(CoordinatePIDEQ):
    name = "heat1d"
    description = "PIDEQ on u_t = kappa u_xx, u = sin(pi x) exp(-kappa pi^2 t); gPINN second loss"
    presets = {
        "quick": {"m": 8, "batch": 16, "rho": 0.8, "kappa": 0.1},
        "default": {"m": 32, "batch": 64, "rho": 0.8, "kappa": 0.1},
        "large": {"m": 256, "batch": 256, "rho": 0.8, "kappa": 0.1},
    }
    coordinates = ("t", "x")
    domain = ((0.0, 1.0), (0.0, 1.0))
    faces = (("t", 0.0), ("x", 0.0), ("x", 1.0))
    physics_partials = named("t", "xx")
    physics2_partials = named("t", "xx", "tx", "xxx")

    def solution(self, x):
        t, space = x[:, 0:1], x[:, 1:2]
        return self.xp.sin(PI * space) * self.xp.exp(-self.kappa * PI**2 * t)

    def boundary_data(self, x):
        """sin(pi x) at t = 0; zero on the sides x = 0, 1."""
        t, space = x[:, 0:1], x[:, 1:2]
        return self.xp.sin(PI * space) * (t == 0)

    def residual(self, x, u, du):
        return du["t"] - self.kappa * du["xx"]

    def gpinn_residual(self, x, u, du):
        return du["tx"] - self.kappa * du["xxx"]
