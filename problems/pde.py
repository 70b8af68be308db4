"""What the PDE families (`heat1d`, `wave1d`, `poisson2d`, `burgers1d`, `mongeampere2d`) share.

Each is a physics-informed DEQ (PIDEQ) on the coordinates p of a point of a box in 2-D
(``(t, x)`` or ``(x, y)``):

    s(p) = (p - centre) / half_width             the box mapped to [-1, 1]^2, fixed, inside f
    z = tanh(W z + U s(p) + b),                  ||W||_2 = rho < 1 (a contraction: tanh is 1-Lipschitz)
    u = C z + c                                  a scalar field, (batch, 1)

The scaling sits inside ``f``, so a unit direction gives partials in the problem's own
units. A family names its coordinates, its box, the faces of the box carrying Dirichlet or
initial data, and writes its equation twice, in output space, against ``self.xp``:

- ``residual(x, u, du)``: the PDE residual (batch, 1), ``du`` the partials of u by the names
  of ``physics_partials`` (multi-indices such as ``"t"``, ``"xx"``, ``"xy"``);
- ``gpinn_residual(x, u, du)``: the residual's derivative along one coordinate, the extra term
  of the gradient-enhanced PINN (gPINN: Yu, Lu, Meng, Karniadakis, "Gradient-enhanced
  physics-informed neural networks for forward and inverse PDE problems", CMAME 393, 2022),
  built on third-order partials (``physics2_partials``).

The batch mixes two kinds of sample (samples are independent; float masks keep the losses
the same under torch and JAX): the first ``edge_share`` of the points sit on the data faces
(in turn), the rest inside the box.

- data loss: ``mean (u - solution)^2`` over every sample;
- physics loss (``pinn_grad``): the mean squared residual over the interior points plus the
  mean of ``(u - g)^2`` over the face points, g the boundary or initial data;
- physics2 loss (``pinn2_grad``): the gPINN loss, the mean over the interior of
  ``r^2 + gpinn_weight * r_g^2``, plus the same face term.

``solution(x)`` is the reference (a closed form, or Burgers' Cole-Hopf quadrature), in torch
so that tests differentiate it by autograd and check the residuals vanish on it.
"""

import zlib

import torch

from deqbench.problems.base import Problem
from deqbench.problems.tanh import spectral_scaled

#: (m, batch) of the presets every family has: quick for CI, default, large.
SIZES = {"quick": (8, 16), "default": (32, 64), "large": (256, 256)}


def sized(**coefficients) -> dict[str, dict]:
    """The quick / default / large presets: ``m``, ``batch``, ``rho`` = 0.8 and the equation's
    coefficients (the same in every preset; ``--size`` overrides them by name)."""
    return {name: {"m": m, "batch": batch, "rho": 0.8, **coefficients} for name, (m, batch) in SIZES.items()}


def named(*specs: str) -> dict[str, str]:
    """Partials named by their own multi-index: ``named("t", "xx") == {"t": "t", "xx": "xx"}``."""
    return {spec: spec for spec in specs}


class CoordinatePIDEQ(Problem):
    """A PIDEQ on the coordinates of a 2-D box; see the module docstring. Abstract (no name).

    A family sets ``coordinates`` (one character each: the direction names), ``domain`` (one
    ``(low, high)`` per coordinate), ``faces`` (``(coordinate, value)`` pairs carrying data),
    ``physics_partials`` and ``physics2_partials``, and defines ``solution``,
    ``boundary_data``, ``residual`` and ``gpinn_residual``; :class:`TimeSpacePIDEQ` and
    :class:`UnitSquarePIDEQ` below set the first three for the two kinds of box. Its presets
    (:func:`sized`) name ``m``, ``batch``, ``rho`` and its equation's coefficients, which
    become attributes of the same name.
    """

    backends = ("torch", "jax")
    coordinates: tuple[str, str]
    domain: tuple[tuple[float, float], tuple[float, float]]
    faces: tuple[tuple[str, float], ...]
    #: The share of the batch placed on the data faces (at least one point a face).
    edge_share = 0.25
    #: The weight of the gPINN term r_g^2 against r^2 (Yu et al. use 0.01 to 1).
    gpinn_weight = 1.0

    def build(self, generator, *, m, batch, rho, **coefficients):
        # Each family draws its own numbers: the same seed would otherwise give heat1d and
        # wave1d the same layer and points, and duplicate cells for every query but the losses.
        generator.manual_seed(self.seed + zlib.crc32(self.name.encode()))
        for name, value in coefficients.items():
            setattr(self, name, value)
        n = len(self.coordinates)
        self.theta = {
            "W": spectral_scaled(self.randn(generator, m, m), rho),
            "U": self.randn(generator, m, n),
            "b": 0.5 * self.randn(generator, m),
            "C": self.randn(generator, 1, m) / m**0.5,
            "c": torch.zeros(1, dtype=self.dtype, device=self.device),
        }
        low, high = (self.tensor([bounds[i] for bounds in self.domain]) for i in (0, 1))
        self.centre, self.half_width = (low + high) / 2, (high - low) / 2
        self.x, on_face = self.draw_points(generator, batch, low, high)
        self.edge_mask = on_face.to(self.dtype)[:, None]
        self.interior_mask = 1 - self.edge_mask
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        self.directions = {name: eye[i] for i, name in enumerate(self.coordinates)}
        self.target = self.solution(self.x)
        self.edge_target = self.boundary_data(self.x) * self.edge_mask

    def draw_points(self, generator, batch, low, high):
        """(points, on_face): uniform points in the box, the first ones pinned to the faces in
        turn (``edge_share`` of the batch, at least one a face) and flagged as face points."""
        points = low + (high - low) * self.uniform(generator, batch, len(self.coordinates))
        n_edge = max(len(self.faces), round(batch * self.edge_share))
        for i in range(n_edge):
            coordinate, value = self.faces[i % len(self.faces)]
            points[i, self.coordinates.index(coordinate)] = value
        on_face = torch.arange(batch, device=self.device) < n_edge
        return points, on_face

    # ------------------------------------------------------------ the model
    def f(self, theta, x, z):
        scaled = (x - self.centre) / self.half_width
        return self.xp.tanh(z @ theta["W"].T + scaled @ theta["U"].T + theta["b"])

    def output(self, theta, z):
        return z @ theta["C"].T + theta["c"]

    def head_partials(self, theta, d):
        """The partials of u = C z + c from those of z*: each d[name] @ C^T, (batch, 1)."""
        return {name: partial @ theta["C"].T for name, partial in d.items()}

    # ------------------------------------------------------------ the equation
    def solution(self, x):
        """The reference u at points x (batch, 2), (batch, 1); torch, differentiable."""
        raise NotImplementedError

    def boundary_data(self, x):
        """The Dirichlet or initial data g at points on the faces (batch, 1), in torch."""
        raise NotImplementedError

    def residual(self, x, u, du):
        """The PDE residual (batch, 1) of a field u with partials du, in ``self.xp``."""
        raise NotImplementedError

    def gpinn_residual(self, x, u, du):
        """The residual's derivative along one coordinate (batch, 1), in ``self.xp``."""
        raise NotImplementedError

    # ------------------------------------------------------------ the losses
    def masked_mean(self, mask, values):
        """The mean of values (batch, 1) over the samples a float mask (batch, 1) selects."""
        return self.xp.sum(mask * values) / self.xp.sum(mask)

    def boundary_loss(self, u):
        """Mean (u - g)^2 over the face points: the boundary and initial conditions."""
        return self.masked_mean(self.edge_mask, (u - self.edge_target) ** 2)

    def data_loss(self, theta, x, z):
        return self.mean_square(self.output(theta, z) - self.target)

    def physics_loss(self, theta, x, z, d):
        u, du = self.output(theta, z), self.head_partials(theta, d)
        return self.masked_mean(self.interior_mask, self.residual(x, u, du) ** 2) + self.boundary_loss(u)

    def physics2_loss(self, theta, x, z, d):
        u, du = self.output(theta, z), self.head_partials(theta, d)
        gpinn = self.residual(x, u, du) ** 2 + self.gpinn_weight * self.gpinn_residual(x, u, du) ** 2
        return self.masked_mean(self.interior_mask, gpinn) + self.boundary_loss(u)


class TimeSpacePIDEQ(CoordinatePIDEQ):
    """An evolution equation in (t, x): data on the faces t = t_low (the initial condition) and
    x = x_low, x_high (homogeneous Dirichlet); ``jvp`` along t. A family defines
    ``initial_condition(space)``, u at t = t_low, (batch, 1). Abstract (no name)."""

    coordinates = ("t", "x")
    domain = ((0.0, 1.0), (0.0, 1.0))

    @property
    def faces(self):
        (t_low, _), (x_low, x_high) = self.domain
        return (("t", t_low), ("x", x_low), ("x", x_high))

    def initial_condition(self, space):
        raise NotImplementedError

    def boundary_data(self, x):
        """The initial condition on the face t = t_low; zero on the sides."""
        t, space = x[:, 0:1], x[:, 1:2]
        return self.initial_condition(space) * (t == self.domain[0][0])


class UnitSquarePIDEQ(CoordinatePIDEQ):
    """A boundary-value problem on (x, y) in [0, 1]^2 with data on the four edges; ``jvp``
    along x. Abstract (no name)."""

    coordinates = ("x", "y")
    domain = ((0.0, 1.0), (0.0, 1.0))
    faces = (("x", 0.0), ("x", 1.0), ("y", 0.0), ("y", 1.0))
    jvp_direction = "x"
