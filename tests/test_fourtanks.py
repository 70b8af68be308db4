"""`fourtanks`: the quadruple-tank residual, the reference and the initial-condition mask.

(Every strategy x query on it, torch and JAX, is verified against the oracle by
`tests/test_verification.py`; torch and JAX giving the same values by `tests/test_backends.py`.)
"""

import numpy as np
import pytest
import torch

import deqbench
from deqbench.problems.fourtanks import FourTanks


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_the_residual_vanishes_on_the_reference_trajectory(preset):
    """ode_rhs on the reference equals a central difference of the reference in t."""
    problem = deqbench.get_problem("fourtanks", preset)
    x = problem.x.numpy()
    step = 1e-4 * problem.t_end
    moving = x[:, 0] > 0
    assert moving.sum() >= problem.batch // 2
    worst = 0.0
    for t, h0, v in zip(x[moving, 0], x[moving, 1:5], x[moving, 5:7], strict=True):
        ahead, behind = FourTanks.integrate(h0, v, t + step), FourTanks.integrate(h0, v, t - step)
        slope = (ahead - behind) / (2 * step)
        level = torch.as_tensor(FourTanks.integrate(h0, v, t))[None]
        rhs = problem.ode_rhs(level, torch.as_tensor(v)[None])[0].numpy()
        worst = max(worst, float(np.abs(rhs - slope).max() / np.abs(rhs).max()))
    assert worst < 1e-6, worst


def test_the_residual_is_not_trivially_zero():
    """A wrong rhs (a sign flip on the inflow from the upper tank) leaves a visible residual."""
    problem = deqbench.get_problem("fourtanks", "quick")
    i = int(np.argmax(problem.x[:, 0].numpy()))
    h, v = problem.reference_levels[i : i + 1], problem.x[i : i + 1, 5:7]
    rhs = problem.ode_rhs(h, v)
    flow_t = problem.flow_t.clone()
    problem.flow_t[2, 0] = -problem.flow_t[2, 0]  # a3/A1 -> -a3/A1
    wrong = problem.ode_rhs(h, v)
    problem.flow_t = flow_t
    assert float((wrong - rhs).abs().max()) > 1e-2


def test_the_t0_reference_is_h0_and_the_mask_selects_exactly_the_t0_samples():
    problem = deqbench.get_problem("fourtanks", "default")
    t0 = problem.x[:, 0] == 0
    assert torch.equal(problem.ic_mask, t0.to(problem.dtype))
    assert problem.n_ic == float(t0.sum()) == problem.batch // 4
    assert torch.equal(problem.reference_levels[t0], problem.x[t0, 1:5])
    assert bool((problem.reference_levels[~t0] != problem.x[~t0, 1:5]).any(dim=1).all())


def test_the_initial_condition_term_counts_only_the_t0_samples():
    """With dz matched to the reference rhs, the physics loss is the t = 0 term alone."""
    problem = deqbench.get_problem("fourtanks", "quick")
    theta, x = problem.theta, problem.x
    z = 0.3 * torch.randn(
        problem.batch, problem.m, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    y = problem.output(theta, z)
    # the least-squares dz with dz @ C.T = rhs(y, v): C has full row rank (4 < m)
    dz = torch.linalg.lstsq(theta["C"], problem.ode_rhs(y, x[:, 5:7]).T).solution.T
    loss = float(problem.physics_loss(theta, x, z, {"z_t": dz}))
    t0 = x[:, 0] == 0
    expected = float(((y[t0] - x[t0, 1:5]) ** 2).sum(dim=1).mean())
    assert loss == pytest.approx(expected, rel=1e-10)
    assert expected > 0


def test_the_second_order_residual_is_the_derivative_of_the_first():
    """physics2's (d rhs/dh) dh is the directional derivative of ode_rhs (finite difference)."""
    problem = deqbench.get_problem("fourtanks", "quick")
    h = problem.reference_levels
    dh = torch.randn(h.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    v = problem.x[:, 5:7]
    eps = 1e-6
    fd = (problem.ode_rhs(h + eps * dh, v) - problem.ode_rhs(h - eps * dh, v)) / (2 * eps)
    assert torch.allclose(problem.ode_rhs_dt(h, dh), fd, rtol=1e-7, atol=1e-10)


def test_the_layer_is_a_contraction_with_positive_levels():
    problem = deqbench.get_problem("fourtanks", "default")
    B = problem.theta["B"]
    assert float(torch.linalg.matrix_norm(B, ord=2)) < 1
    z = torch.zeros(problem.batch, problem.m, dtype=torch.float64)
    for _ in range(200):
        z = problem.f(problem.theta, problem.x, z)
    assert float((problem.f(problem.theta, problem.x, z) - z).abs().max()) < 1e-12
    assert float(problem.output(problem.theta, z).min()) > 5.0
