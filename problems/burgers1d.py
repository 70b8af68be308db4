"""`burgers1d`: a PIDEQ on viscous Burgers' equation, the classic PINN benchmark (Raissi et al.).

    u_t + u u_x - nu u_xx = 0,   nu = 0.01 / pi,   on (t, x) in [0, 1] x [-1, 1]
    u(0, x) = -sin(pi x),  u(t, -1) = u(t, 1) = 0

A shock forms at x = 0 near t = 1/pi; by t = 1 its width is a few times nu.

**The reference** is computed here, by the Cole-Hopf transform (Basdevant et al., "Spectral
and finite difference solutions of the Burgers equation", Computers & Fluids 14, 1986):

    u(t, x) = - int sin(pi (x - eta)) F(x - eta) G(eta) d eta / int F(x - eta) G(eta) d eta,
    F(y) = exp(-cos(pi y) / (2 pi nu)),   G(eta) = exp(-eta^2 / (4 nu t)).

With eta = sqrt(4 nu t) s, G d eta becomes exp(-s^2) ds, so Gauss-Hermite quadrature on
``hermite_nodes`` nodes (``numpy.polynomial.hermite.hermgauss``) turns both integrals into
sums, and the ratio into a softmax-weighted mean of -sin(pi (x - sqrt(4 nu t) s_k)) with
logits ``log w_k - cos(pi (x - sqrt(4 nu t) s_k)) / (2 pi nu)`` (no overflow: F spans e^-50 to
e^50). Written in torch, it is differentiable by autograd to any order, so the tests check
the residual on the reference itself. Accuracy, measured over the whole box, shock
included: 160 nodes (the default) and 320 agree to 1e-15 in u; on 400 random points of
(0, 1] x [-1, 1] the residual of the reference is below 3e-14 and its x-derivative (third
order, where u_xxx reaches 1e6 at the shock) below 1e-11; 80 nodes give 2e-12 and 9e-10. At
t = 0 the sum is exactly -sin(pi x) (every node sits at x); the t-derivative is singular
there (sqrt t), so the interior points are drawn in (0, 1] and never at t = 0.

The model, samples and losses are those of :mod:`deqbench.problems.pde`:

- ``pinn_grad``: the residual ``r = u_t + u u_x - nu u_xx`` (partials ``t``, ``x``, ``xx``) on
  the interior points, plus ``(u - g)^2`` on the points at t = 0 and x = -1, 1;
- ``pinn2_grad``: gPINN, ``r^2 + r_x^2`` with ``r_x = u_tx + u_x^2 + u u_xx - nu u_xxx``
  (partials ``t``, ``x``, ``xx``, ``tx``, ``xxx``: third order), plus the same boundary term.

``jvp`` differentiates along t.
"""

import functools
import math

import numpy as np
import torch

from deqbench.problems.pde import TimeSpacePIDEQ, named, sized

PI = math.pi
VISCOSITY = 0.01 / PI


@functools.cache
def hermite_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """(s_k, log w_k) of Gauss-Hermite quadrature (weight exp(-s^2)), nodes with w_k > 0 only."""
    points, weights = np.polynomial.hermite.hermgauss(nodes)
    kept = weights > 0
    return points[kept], np.log(weights[kept])


def cole_hopf(t: torch.Tensor, x: torch.Tensor, *, nodes: int, nu: float = VISCOSITY) -> torch.Tensor:
    """Burgers' solution with u(0, x) = -sin(pi x) at points (t, x) (same shape, t >= 0), by
    Cole-Hopf and Gauss-Hermite quadrature on ``nodes`` nodes; differentiable by autograd."""
    points, log_weights = (torch.as_tensor(a, dtype=x.dtype, device=x.device) for a in hermite_rule(nodes))
    shifted = x[..., None] - torch.sqrt(4 * nu * t)[..., None] * points
    logits = log_weights - torch.cos(PI * shifted) / (2 * PI * nu)
    return -(torch.softmax(logits, dim=-1) * torch.sin(PI * shifted)).sum(dim=-1)


class Burgers1D(TimeSpacePIDEQ):
    name = "burgers1d"
    description = "PIDEQ on viscous Burgers (nu = 0.01/pi, u0 = -sin(pi x)), Cole-Hopf reference; gPINN"
    presets = sized()
    domain = ((0.0, 1.0), (-1.0, 1.0))
    physics_partials = named("t", "x", "xx")
    physics2_partials = named("t", "x", "xx", "tx", "xxx")
    nu = VISCOSITY
    #: Gauss-Hermite nodes of the reference (320 agree to 1e-15: see the module docstring).
    hermite_nodes = 160

    def solution(self, x):
        """The Cole-Hopf reference (batch, 1); torch only (it is computed once, at build)."""
        return cole_hopf(x[:, 0], x[:, 1], nodes=self.hermite_nodes)[:, None]

    def initial_condition(self, space):
        return -self.xp.sin(PI * space)

    def residual(self, x, u, du):
        return du["t"] + u * du["x"] - self.nu * du["xx"]

    def gpinn_residual(self, x, u, du):
        return du["tx"] + du["x"] ** 2 + u * du["xx"] - self.nu * du["xxx"]
