"""`poisson2d`: a PIDEQ on Poisson's equation on the unit square, with its closed form.

    -(u_xx + u_yy) = 2 pi^2 sin(pi x) sin(pi y)     on (x, y) in [0, 1]^2
    u = 0 on the boundary
    u(x, y) = sin(pi x) sin(pi y)

The model, samples and losses are those of :mod:`deqbench.problems.pde`:

- ``pinn_grad``: the residual ``r = -(u_xx + u_yy) - f`` (partials ``xx``, ``yy``) on the
  interior points, plus ``u^2`` on the points of the four edges;
- ``pinn2_grad``: gPINN, ``r^2 + r_x^2`` with ``r_x = -(u_xxx + u_xyy) - f_x`` (partials
  ``xx``, ``yy``, ``xxx``, ``xyy``: third order, one of them mixed), plus the same edge term.

``jvp`` differentiates along x.
"""

import math

from deqbench.problems.pde import UnitSquarePIDEQ, named, sized

PI = math.pi


class Poisson2D(UnitSquarePIDEQ):
    name = "poisson2d"
    description = "PIDEQ on -lap u = 2 pi^2 sin(pi x) sin(pi y) on the unit square; gPINN second loss"
    presets = sized()
    physics_partials = named("xx", "yy")
    physics2_partials = named("xx", "yy", "xxx", "xyy")

    def solution(self, x):
        return self.xp.sin(PI * x[:, 0:1]) * self.xp.sin(PI * x[:, 1:2])

    def boundary_data(self, x):
        return 0 * x[:, 0:1]

    def source(self, x):
        """f = 2 pi^2 sin(pi x) sin(pi y)."""
        return 2 * PI**2 * self.xp.sin(PI * x[:, 0:1]) * self.xp.sin(PI * x[:, 1:2])

    def source_dx(self, x):
        """df/dx = 2 pi^3 cos(pi x) sin(pi y)."""
        return 2 * PI**3 * self.xp.cos(PI * x[:, 0:1]) * self.xp.sin(PI * x[:, 1:2])

    def residual(self, x, u, du):
        return -(du["xx"] + du["yy"]) - self.source(x)

    def gpinn_residual(self, x, u, du):
        return -(du["xxx"] + du["xyy"]) - self.source_dx(x)
