"""`vanderpol`: the seed author's PIDEQ task, the Van der Pol oscillator.

    y1' = y2,   y2' = mu (1 - y1^2) y2 - y1,   mu = 1, t in [0, 2], y(0) = (0, 0.1)

A DEQ ``z = tanh(A t + B z + b)`` with a linear head ``y = C z + c`` is evaluated at
collocation times. The data loss compares y with the ODE's solution (the problem's
reference trajectory, from scipy at tight tolerances); the physics loss is the first-order
residual on (y, dy/dt) at every collocation time plus the initial-condition term
``|y(0) - y0|^2`` on the samples at t = 0 (the first collocation time; a float mask, the
same in torch and JAX), and pinn2_grad uses the second-order form
``y1'' - mu (1 - y1^2) y1' + y1 = 0``.
"""

import numpy as np
import torch

from deqbench.problems.base import Problem
from deqbench.problems.tanh import spectral_scaled


class VanDerPol(Problem):
    name = "vanderpol"
    description = "PIDEQ on the Van der Pol oscillator (mu=1, t in [0, 2], y0=(0, 0.1))"
    backends = ("torch", "jax")
    presets = {
        "quick": {"m": 8, "batch": 8, "rho": 0.8, "mu": 1.0},
        "default": {"m": 32, "batch": 32, "rho": 0.8, "mu": 1.0},
        "large": {"m": 256, "batch": 128, "rho": 0.8, "mu": 1.0},
    }
    t_end = 2.0
    y0 = (0.0, 0.1)

    def build(self, generator, *, m, batch, rho, mu):
        self.mu = mu
        self.theta = {
            "A": self.randn(generator, m, 1),
            "B": spectral_scaled(self.randn(generator, m, m), rho),
            "b": 0.5 * self.randn(generator, m),
            "C": self.randn(generator, 2, m) / m**0.5,
            "c": torch.zeros(2, dtype=self.dtype, device=self.device),
        }
        self.x = torch.linspace(0, self.t_end, batch, dtype=self.dtype, device=self.device)[:, None]
        self.directions = {"t": torch.ones(1, dtype=self.dtype, device=self.device)}
        self.trajectory = self.solve_ode()
        #: 1.0 on the samples at t = 0, where the initial-condition term applies
        self.ic_mask = (self.x[:, 0] == 0).to(self.dtype)

    def f(self, theta, x, z):
        return self.xp.tanh(x @ theta["A"].T + z @ theta["B"].T + theta["b"])

    def output(self, theta, z):
        return z @ theta["C"].T + theta["c"]

    def solve_ode(self) -> torch.Tensor:
        """The ODE's solution at the collocation times, (batch, 2): the reference trajectory."""
        from scipy.integrate import solve_ivp

        mu = self.mu
        times = self.x[:, 0].detach().cpu().double().numpy()
        solution = solve_ivp(
            lambda t, y: [y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]],
            (0.0, self.t_end),
            np.array(self.y0),
            t_eval=times,
            rtol=1e-12,
            atol=1e-12,
            method="DOP853",
        )
        return self.tensor(solution.y.T)

    def data_loss(self, theta, x, z):
        return self.mean_square(self.output(theta, z) - self.trajectory)

    physics_partials = {"z_t": "t"}
    physics2_partials = {"z_t": "t", "z_tt": "tt"}

    physics_loss = Problem.summed_physics_terms

    def physics_terms(self, theta, x, z, d):
        """The ODE residual's mean square and the initial-condition term, apart."""
        y, dy = self.output(theta, z), d["z_t"] @ theta["C"].T
        r1 = dy[:, 0] - y[:, 1]
        r2 = dy[:, 1] - self.mu * (1 - y[:, 0] ** 2) * y[:, 1] + y[:, 0]
        return {"residual": self.xp.mean(r1**2 + r2**2), "initial_condition": self.initial_condition_loss(y)}

    def initial_condition_loss(self, y):
        """Squared distance of y from y0, summed over the samples at t = 0."""
        miss = (y[:, 0] - self.y0[0]) ** 2 + (y[:, 1] - self.y0[1]) ** 2
        return self.xp.sum(self.ic_mask * miss)

    def physics2_loss(self, theta, x, z, d):
        y1 = self.output(theta, z)[:, 0]
        dy1 = d["z_t"] @ theta["C"][0]
        d2y1 = d["z_tt"] @ theta["C"][0]
        return self.xp.mean((d2y1 - self.mu * (1 - y1**2) * dy1 + y1) ** 2)
