"""`mongeampere2d`: a PIDEQ on the Monge-Ampere equation, a residual with a mixed partial.

    u_xx u_yy - u_xy^2 = f,   f = (1 + x^2 + y^2) exp(x^2 + y^2)    on (x, y) in [0, 1]^2
    u = g on the boundary,    u(x, y) = g(x, y) = exp((x^2 + y^2) / 2)   (convex: the elliptic branch)

The model, samples and losses are those of :mod:`deqbench.problems.pde`:

- ``pinn_grad``: the residual ``r = u_xx u_yy - u_xy^2 - f`` (partials ``xx``, ``yy`` and the
  mixed ``xy``) on the interior points, plus ``(u - g)^2`` on the points of the four edges;
- ``pinn2_grad``: gPINN, ``r^2 + r_x^2`` with
  ``r_x = u_xxx u_yy + u_xx u_xyy - 2 u_xy u_xxy - f_x``, ``f_x = 2 x (2 + x^2 + y^2) exp(x^2 + y^2)``
  (partials ``xx``, ``yy``, ``xy``, ``xxx``, ``xyy``, ``xxy``: third order, mixed), plus the
  same edge term.

``jvp`` differentiates along x.
"""

from deqbench.problems.pde import UnitSquarePIDEQ, named, sized


class MongeAmpere2D(UnitSquarePIDEQ):
    name = "mongeampere2d"
    description = "PIDEQ on det D2u = f (Monge-Ampere), u = exp((x^2 + y^2)/2); mixed partial u_xy"
    presets = sized()
    physics_partials = named("xx", "yy", "xy")
    physics2_partials = named("xx", "yy", "xy", "xxx", "xyy", "xxy")

    def solution(self, x):
        return self.xp.exp((x[:, 0:1] ** 2 + x[:, 1:2] ** 2) / 2)

    def boundary_data(self, x):
        return self.solution(x)

    def source(self, x):
        """f = (1 + x^2 + y^2) exp(x^2 + y^2)."""
        radius2 = x[:, 0:1] ** 2 + x[:, 1:2] ** 2
        return (1 + radius2) * self.xp.exp(radius2)

    def source_dx(self, x):
        """df/dx = 2 x (2 + x^2 + y^2) exp(x^2 + y^2)."""
        radius2 = x[:, 0:1] ** 2 + x[:, 1:2] ** 2
        return 2 * x[:, 0:1] * (2 + radius2) * self.xp.exp(radius2)

    def residual(self, x, u, du):
        return du["xx"] * du["yy"] - du["xy"] ** 2 - self.source(x)

    def gpinn_residual(self, x, u, du):
        return du["xxx"] * du["yy"] + du["xx"] * du["xyy"] - 2 * du["xy"] * du["xxy"] - self.source_dx(x)
