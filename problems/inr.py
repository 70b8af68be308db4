"""`inr`: an implicit neural representation, a DEQ on coordinates p = (x, y) in [0, 1]^2.

The layer reads random Fourier features of the coordinates,

    gamma(p) = [sin(2 pi P p), cos(2 pi P p)],   P: (features, 2), fixed (drawn at build)
    z = tanh(W z + U gamma(p) + b),               ||W||_2 = rho < 1 (a contraction)
    u = C z + c                                   (a scalar field, (batch, 1))

and fits the closed-form signal

    s(x, y) = sin(2 pi x) cos(pi y) + 0.5 sin(pi x y).

The directions are the unit vectors ``"x"`` and ``"y"`` (``jvp`` differentiates along x), so:

- ``grad``: the data loss, ``mean (u - s)^2``;
- ``pinn_grad``: gradient matching, ``mean |grad u - grad s|^2`` (partials u_x, u_y);
- ``pinn2_grad``: Laplacian matching, ``mean (u_xx + u_yy - lap s)^2`` (u_xx, u_yy);
- ``hessian``: the full input Hessian of z*, (batch, m, 2, 2); :meth:`INR.laplacian` contracts
  it with the head and takes the trace, the representation's Laplacian (batch, 1), to compare
  with :meth:`INR.signal_laplacian`.
"""

import math

import torch

from deqbench.problems.base import Problem
from deqbench.problems.tanh import spectral_scaled

PI = math.pi


class INR(Problem):
    name = "inr"
    description = "implicit neural representation: Fourier-feature DEQ fitting a 2-D signal; its Laplacian"
    backends = ("torch", "jax")
    jvp_direction = "x"
    physics_partials = {"z_x": "x", "z_y": "y"}
    physics2_partials = {"z_xx": "xx", "z_yy": "yy"}
    presets = {
        "quick": {"m": 8, "batch": 8, "features": 4, "rho": 0.8},
        "default": {"m": 64, "batch": 256, "features": 16, "rho": 0.8},
        "large": {"m": 512, "batch": 1024, "features": 64, "rho": 0.8},
    }

    def build(self, generator, *, m, batch, features, rho):
        #: the Fourier frequencies: fixed, a plain tensor attribute (not in theta)
        self.P = self.randn(generator, features, 2)
        self.theta = {
            "W": spectral_scaled(self.randn(generator, m, m), rho),
            "U": self.randn(generator, m, 2 * features) / (2 * features) ** 0.5,
            "b": 0.5 * self.randn(generator, m),
            "C": self.randn(generator, 1, m) / m**0.5,
            "c": torch.zeros(1, dtype=self.dtype, device=self.device),
        }
        self.x = self.uniform(generator, batch, 2)
        eye = torch.eye(2, dtype=self.dtype, device=self.device)
        self.directions = {"x": eye[0], "y": eye[1]}

    # ------------------------------------------------------------ the layer
    def features(self, x):
        """gamma(p) = [sin(2 pi P p), cos(2 pi P p)], (batch, 2 features)."""
        xp = self.xp
        phase = 2 * PI * (x @ self.P.T)
        return xp.concatenate([xp.sin(phase), xp.cos(phase)], axis=1)

    def f(self, theta, x, z):
        return self.xp.tanh(z @ theta["W"].T + self.features(x) @ theta["U"].T + theta["b"])

    def output(self, theta, z):
        return z @ theta["C"].T + theta["c"]

    def laplacian(self, hessian, theta):
        """The representation's Laplacian (batch, 1) from the state Hessian (batch, m, 2, 2)
        (the ``hessian`` query's ``d2z_dx2``): trace over the inputs, then the linear head."""
        return (hessian[:, :, 0, 0] + hessian[:, :, 1, 1]) @ theta["C"].T

    # ----------------------------------------------------------- the signal
    def signal(self, coords):
        """s(x, y) = sin(2 pi x) cos(pi y) + 0.5 sin(pi x y), (batch, 1)."""
        xp = self.xp
        x, y = coords[:, 0:1], coords[:, 1:2]
        return xp.sin(2 * PI * x) * xp.cos(PI * y) + 0.5 * xp.sin(PI * x * y)

    def signal_gradient(self, coords):
        """(ds/dx, ds/dy), (batch, 2)."""
        xp = self.xp
        x, y = coords[:, 0:1], coords[:, 1:2]
        ds_dx = 2 * PI * xp.cos(2 * PI * x) * xp.cos(PI * y) + 0.5 * PI * y * xp.cos(PI * x * y)
        ds_dy = -PI * xp.sin(2 * PI * x) * xp.sin(PI * y) + 0.5 * PI * x * xp.cos(PI * x * y)
        return xp.concatenate([ds_dx, ds_dy], axis=1)

    def signal_d2x(self, coords):
        """d2s/dx2, (batch, 1)."""
        xp = self.xp
        x, y = coords[:, 0:1], coords[:, 1:2]
        return -4 * PI**2 * xp.sin(2 * PI * x) * xp.cos(PI * y) - 0.5 * PI**2 * y**2 * xp.sin(PI * x * y)

    def signal_d2y(self, coords):
        """d2s/dy2, (batch, 1)."""
        xp = self.xp
        x, y = coords[:, 0:1], coords[:, 1:2]
        return -(PI**2) * xp.sin(2 * PI * x) * xp.cos(PI * y) - 0.5 * PI**2 * x**2 * xp.sin(PI * x * y)

    def signal_laplacian(self, coords):
        """d2s/dx2 + d2s/dy2, (batch, 1)."""
        xp = self.xp
        x, y = coords[:, 0:1], coords[:, 1:2]
        return -5 * PI**2 * xp.sin(2 * PI * x) * xp.cos(PI * y) - 0.5 * PI**2 * (x**2 + y**2) * xp.sin(
            PI * x * y
        )

    # ------------------------------------------------------------ the losses
    def gradient_mismatch(self, x, gradient):
        """mean |grad u - grad s|^2 for a candidate (u_x, u_y), (batch, 2)."""
        return self.mean_square(gradient - self.signal_gradient(x))

    def laplacian_mismatch(self, x, laplacian):
        """mean (lap u - lap s)^2 for a candidate Laplacian (batch, 1)."""
        return self.mean_square(laplacian - self.signal_laplacian(x))

    def data_loss(self, theta, x, z):
        return self.mean_square(self.output(theta, z) - self.signal(x))

    def physics_loss(self, theta, x, z, d):
        gradient = self.xp.concatenate([d["z_x"] @ theta["C"].T, d["z_y"] @ theta["C"].T], axis=1)
        return self.gradient_mismatch(x, gradient)

    def physics2_loss(self, theta, x, z, d):
        return self.laplacian_mismatch(x, (d["z_xx"] + d["z_yy"]) @ theta["C"].T)
