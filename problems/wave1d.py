"""`wave1d`: a PIDEQ on the wave equation, with a closed-form standing wave.

    u_tt = c^2 u_xx      on (t, x) in [0, 1] x [0, 1]
    u(0, x) = sin(pi x),  u_t(0, x) = 0,  u(t, 0) = u(t, 1) = 0
    u(t, x) = sin(pi x) cos(c pi t)                  (c = 1: half a period over t in [0, 1])

The model, samples and losses are those of :mod:`deqbench.problems.pde`:

- ``pinn_grad``: the residual ``r = u_tt - c^2 u_xx`` (partials ``tt``, ``xx``) on the interior
  points, plus ``(u - g)^2`` on the points at t = 0, x = 0 and x = 1, plus the initial
  velocity ``u_t^2`` on the points at t = 0 (partial ``t``);
- ``pinn2_grad``: gPINN, ``r^2 + r_x^2`` with ``r_x = u_ttx - c^2 u_xxx`` (partials ``tt``,
  ``xx``, ``ttx``, ``xxx``: third order), plus the boundary term on u.

``jvp`` differentiates along t.
"""

import math

from deqbench.problems.pde import TimeSpacePIDEQ, named, sized

PI = math.pi


class Wave1D(TimeSpacePIDEQ):
    name = "wave1d"
    description = "PIDEQ on u_tt = c^2 u_xx, standing wave sin(pi x) cos(c pi t); gPINN second loss"
    presets = sized(c=1.0)
    physics_partials = named("t", "tt", "xx")
    physics2_partials = named("tt", "xx", "ttx", "xxx")

    def build(self, generator, **size):
        super().build(generator, **size)
        #: the face points at t = 0, where the initial velocity is held at zero
        self.initial_mask = self.edge_mask * (self.x[:, 0:1] == 0)

    def solution(self, x):
        t, space = x[:, 0:1], x[:, 1:2]
        return self.xp.sin(PI * space) * self.xp.cos(self.c * PI * t)

    def initial_condition(self, space):
        return self.xp.sin(PI * space)

    def residual(self, x, u, du):
        return du["tt"] - self.c**2 * du["xx"]

    def gpinn_residual(self, x, u, du):
        return du["ttx"] - self.c**2 * du["xxx"]

    def initial_velocity_loss(self, du):
        """Mean u_t^2 over the points at t = 0: the string starts at rest."""
        return self.masked_mean(self.initial_mask, du["t"] ** 2)

    def physics_loss(self, theta, x, z, d):
        return super().physics_loss(theta, x, z, d) + self.initial_velocity_loss(self.head_partials(theta, d))
