"""`tanh`: a random contractive DEQ, z = tanh(W z + U x + b).

W is scaled to spectral norm ``rho``; since tanh is 1-Lipschitz the layer is a contraction
in z whenever rho < 1 (and may diverge when rho > 1). Toy physics losses exercise the
derivative queries: ``dz/dt + z = 0`` (pinn_grad) and ``d2z/dx2 + z = 0`` (pinn2_grad).
"""

import torch

from deqbench.problems.base import Problem


def spectral_scaled(matrix: torch.Tensor, rho: float) -> torch.Tensor:
    return matrix * (rho / torch.linalg.matrix_norm(matrix, ord=2))


class ToyDEQ(Problem):
    """What the synthetic DEQs (`tanh`, `mondeq`) share: Gaussian inputs and target, the
    first and last input coordinates as directions, and the toy losses. Abstract (no name)."""

    def draw_inputs(self, generator, *, m, n, batch):
        """x, the data loss's target and the directions; drawn after theta, in this order."""
        self.x = self.randn(generator, batch, n)
        self.target = 0.5 * self.randn(generator, batch, m)
        eye = torch.eye(n, dtype=self.dtype, device=self.device)
        self.directions = {"t": eye[0], "x": eye[-1]}

    def data_loss(self, theta, x, z):
        return 0.5 * self.mean_square(z - self.target)

    physics_partials = {"z_t": "t"}
    physics2_partials = {"z_xx": "xx"}

    def physics_loss(self, theta, x, z, d):
        return self.mean_square(d["z_t"] + z)

    def physics2_loss(self, theta, x, z, d):
        return self.mean_square(d["z_xx"] + z)


class TanhDEQ(ToyDEQ):
    name = "tanh"
    description = "random contractive z = tanh(W z + U x + b); toy ODE/PDE residuals"
    backends = ("torch", "jax")
    presets = {
        "quick": {"m": 8, "n": 3, "batch": 4, "rho": 0.8},
        "default": {"m": 32, "n": 4, "batch": 16, "rho": 0.8},
        "large": {"m": 256, "n": 4, "batch": 128, "rho": 0.8},
        "large1024": {"m": 1024, "n": 4, "batch": 128, "rho": 0.8},
        "xlarge": {"m": 4096, "n": 4, "batch": 64, "rho": 0.8},
    }

    def build(self, generator, *, m, n, batch, rho):
        self.theta = {
            "W": spectral_scaled(self.randn(generator, m, m), rho),
            "U": self.randn(generator, m, n) / n**0.5,
            "b": 0.5 * self.randn(generator, m),
        }
        self.draw_inputs(generator, m=m, n=n, batch=batch)

    def f(self, theta, x, z):
        return self.xp.tanh(z @ theta["W"].T + x @ theta["U"].T + theta["b"])
