"""`fourtanks`: PIDEQ on the quadruple-tank process (Johansson 2000), as in Pacheco & Antonelo.

The four water levels h1..h4 (cm) of Johansson's quadruple tank under constant pump
voltages v1, v2 (V):

    dh1/dt = -a1/A1 sqrt(2 g h1) + a3/A1 sqrt(2 g h3) + g1 k1/A1 v1
    dh2/dt = -a2/A2 sqrt(2 g h2) + a4/A2 sqrt(2 g h4) + g2 k2/A2 v2
    dh3/dt = -a3/A3 sqrt(2 g h3) + (1 - g2) k2/A3 v2
    dh4/dt = -a4/A4 sqrt(2 g h4) + (1 - g1) k1/A4 v1

with the minimum-phase parameters of K. H. Johansson, "The quadruple-tank process: a
multivariable laboratory process with an adjustable zero", IEEE Trans. Control Systems
Technology 8(3), 456-465, 2000 (Table I and the P- operating point).

Each sample is x = (t, h0_1..h0_4, v1, v2) in physical units (s, cm, V), n = 7: the model
maps a time, an initial state and a constant input to the levels at that time. The layer
is ``z = tanh(A s(x) + B z + b)`` with the fixed scaling ``s(x) = x / x_scale``,
``x_scale = (T, H, H, H, H, V, V)`` (T = ``t_end`` s, H = ``h_scale`` cm, V = ``v_scale``
V, Python floats), applied *inside* f, so the ``"t"`` direction (the unit vector on the t
coordinate) gives dz/dt in raw seconds. B has spectral norm ``rho`` < 1 and tanh is
1-Lipschitz, so the layer is a contraction. The head ``y = C z + c`` has c near 10 cm and
C small (each row's absolute sum about 1.6), so y stays well positive and sqrt(y) smooth.

Samples: t ~ U[0, T] except the first quarter at t = 0 (the initial-condition term),
h0 ~ U[2, 20] cm, v ~ U[2, 5] V. The reference levels are scipy ``solve_ivp`` (DOP853,
rtol = atol = 1e-12) from h0 with constant v to each sample's t.

- data loss: ``mean_square(y - reference_levels)``;
- physics loss: ``mean_square(dy/dt - rhs(y, v))`` over all samples, plus
  ``mean_square(y - h0)`` over the t = 0 samples (a float mask, the same in torch and JAX);
- physics2 loss: the differentiated residual ``d2y/dt2 - (d rhs/dh)(y) dy/dt``, squared mean
  (a third-order query), on the partials z_t and z_tt.
"""

import numpy as np
import torch

from deqbench.problems.base import Problem
from deqbench.problems.tanh import spectral_scaled

# Johansson (2000), IEEE TCST 8(3), Table I and the minimum-phase operating point P-.
TANK_AREAS = (28.0, 32.0, 28.0, 32.0)  # A1..A4, cm^2
OUTLET_AREAS = (0.071, 0.057, 0.071, 0.057)  # a1..a4, cm^2
GRAVITY = 981.0  # g, cm/s^2
PUMP_GAINS = (3.33, 3.35)  # k1, k2, cm^3/(V s)
VALVE_SPLITS = (0.7, 0.6)  # gamma1, gamma2 (minimum phase: gamma1 + gamma2 > 1)

#: Ranges the samples are drawn from.
LEVEL_RANGE = (2.0, 20.0)  # cm
VOLTAGE_RANGE = (2.0, 5.0)  # V


def tank_matrices():
    """(M, K) with rhs(h, v) = sqrt(2 g h) @ M.T + v @ K.T, as nested lists of floats."""
    (A1, A2, A3, A4), (a1, a2, a3, a4) = TANK_AREAS, OUTLET_AREAS
    (k1, k2), (g1, g2) = PUMP_GAINS, VALVE_SPLITS
    M = [
        [-a1 / A1, 0.0, a3 / A1, 0.0],
        [0.0, -a2 / A2, 0.0, a4 / A2],
        [0.0, 0.0, -a3 / A3, 0.0],
        [0.0, 0.0, 0.0, -a4 / A4],
    ]
    K = [
        [g1 * k1 / A1, 0.0],
        [0.0, g2 * k2 / A2],
        [0.0, (1 - g2) * k2 / A3],
        [(1 - g1) * k1 / A4, 0.0],
    ]
    return M, K


class FourTanks(Problem):
    name = "fourtanks"
    description = "PIDEQ on Johansson's quadruple-tank process (4 levels, 2 pumps, t in [0, 20] s)"
    backends = ("torch", "jax")
    presets = {
        "quick": {"m": 8, "batch": 8, "rho": 0.8},
        "default": {"m": 32, "batch": 64, "rho": 0.8},
        "large": {"m": 256, "batch": 256, "rho": 0.8},
    }
    t_end = 20.0  # s
    h_scale = 20.0  # cm
    v_scale = 5.0  # V
    ic_share = 0.25  # the first quarter of the samples sit at t = 0

    def build(self, generator, *, m, batch, rho):
        n = 7
        self.theta = {
            "A": self.randn(generator, m, n) / n**0.5,
            "B": spectral_scaled(self.randn(generator, m, m), rho),
            "b": 0.5 * self.randn(generator, m),
            "C": 2.0 * self.randn(generator, 4, m) / m,
            "c": 10.0 + 0.5 * self.randn(generator, 4),
        }
        n_ic = max(1, int(batch * self.ic_share))
        t = self.t_end * self.uniform(generator, batch)
        t[:n_ic] = 0.0
        h0 = LEVEL_RANGE[0] + (LEVEL_RANGE[1] - LEVEL_RANGE[0]) * self.uniform(generator, batch, 4)
        v = VOLTAGE_RANGE[0] + (VOLTAGE_RANGE[1] - VOLTAGE_RANGE[0]) * self.uniform(generator, batch, 2)
        self.x = torch.cat([t[:, None], h0, v], dim=1)
        e_t = torch.zeros(n, dtype=self.dtype, device=self.device)
        e_t[0] = 1.0
        self.directions = {"t": e_t}
        self.x_scale = self.tensor([self.t_end] + [self.h_scale] * 4 + [self.v_scale] * 2)
        mask = torch.zeros(batch, dtype=self.dtype, device=self.device)
        mask[:n_ic] = 1.0
        self.ic_mask, self.n_ic = mask, float(n_ic)
        M, K = tank_matrices()
        self.flow_t, self.pump_t = self.tensor(M).T.contiguous(), self.tensor(K).T.contiguous()
        self.reference_levels = self.solve_reference()

    # ------------------------------------------------------------ the model
    def f(self, theta, x, z):
        return self.xp.tanh((x / self.x_scale) @ theta["A"].T + z @ theta["B"].T + theta["b"])

    def output(self, theta, z):
        return z @ theta["C"].T + theta["c"]

    # ------------------------------------------------------------ the plant
    def ode_rhs(self, h, v):
        """dh/dt of the quadruple tank at levels h (batch, 4) and voltages v (batch, 2)."""
        return self.xp.sqrt(2 * GRAVITY * h) @ self.flow_t + v @ self.pump_t

    def ode_rhs_dt(self, h, dh):
        """d/dt rhs(h(t), v) for constant v: (d rhs/dh)(h) dh, with d sqrt(2 g h)/dh = g / sqrt(2 g h)."""
        return (GRAVITY / self.xp.sqrt(2 * GRAVITY * h) * dh) @ self.flow_t

    @staticmethod
    def integrate(h0, v, t):
        """Levels (4,) at time t (s, either sign) from h0 under constant v (DOP853, 1e-12)."""
        from scipy.integrate import solve_ivp

        h0 = np.asarray(h0, dtype=np.float64)
        if t == 0.0:
            return h0.copy()
        M, K = (np.array(a) for a in tank_matrices())
        inflow = K @ np.asarray(v, dtype=np.float64)
        solution = solve_ivp(
            lambda s, h: M @ np.sqrt(2 * GRAVITY * np.maximum(h, 0.0)) + inflow,
            (0.0, float(t)),
            h0,
            rtol=1e-12,
            atol=1e-12,
            method="DOP853",
        )
        if not solution.success:
            raise RuntimeError(f"fourtanks reference: solve_ivp failed: {solution.message}")
        return solution.y[:, -1]

    def solve_reference(self) -> torch.Tensor:
        """Each sample's levels at its own t, (batch, 4): the reference trajectory."""
        x = self.x.detach().cpu().double().numpy()
        levels = np.empty((x.shape[0], 4))
        for i, (t, h0, v) in enumerate(zip(x[:, 0], x[:, 1:5], x[:, 5:7], strict=True)):
            levels[i] = self.integrate(h0, v, float(t))
        return self.tensor(levels)

    # ------------------------------------------------------------ the losses
    def data_loss(self, theta, x, z):
        return self.mean_square(self.output(theta, z) - self.reference_levels)

    physics_partials = {"z_t": "t"}
    physics2_partials = {"z_t": "t", "z_tt": "tt"}

    physics_loss = Problem.summed_physics_terms

    def physics_terms(self, theta, x, z, d):
        """The ODE residual's mean square and the initial-condition term, apart."""
        y, dy = self.output(theta, z), d["z_t"] @ theta["C"].T
        ode = self.mean_square(dy - self.ode_rhs(y, x[:, 5:7]))
        ic = self.xp.sum(self.ic_mask * self.xp.sum((y - x[:, 1:5]) ** 2, axis=1)) / self.n_ic
        return {"residual": ode, "initial_condition": ic}

    def physics2_loss(self, theta, x, z, d):
        y, dy, d2y = self.output(theta, z), d["z_t"] @ theta["C"].T, d["z_tt"] @ theta["C"].T
        return self.mean_square(d2y - self.ode_rhs_dt(y, dy))
