"""`inr`: the closed-form signal's derivatives, the losses' targets and the Laplacian.

(Every strategy x query on it, torch and JAX, is verified against the oracle by
`tests/test_verification.py`; torch and JAX values by `tests/test_backends.py`.)
"""

import torch

import deqbench
from deqbench.harness.oracle import oracle


def autograd_derivatives(problem, coords):
    """The signal's gradient and Hessian at each point, (batch, 2) and (batch, 2, 2), by autograd."""
    coords = coords.clone().requires_grad_(True)
    s = problem.signal(coords).sum()
    (grad,) = torch.autograd.grad(s, coords, create_graph=True)
    rows = [torch.autograd.grad(grad[:, i].sum(), coords, retain_graph=True)[0] for i in range(2)]
    return grad.detach(), torch.stack(rows, dim=1)


def test_the_closed_form_derivatives_of_the_signal_match_autograd():
    problem = deqbench.get_problem("inr", "quick")
    generator = torch.Generator().manual_seed(3)
    coords = torch.rand(64, 2, generator=generator, dtype=torch.float64)
    grad, hess = autograd_derivatives(problem, coords)
    assert problem.signal(coords).shape == (64, 1)
    torch.testing.assert_close(problem.signal_gradient(coords), grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(problem.signal_d2x(coords), hess[:, 0, 0:1], atol=1e-12, rtol=0)
    torch.testing.assert_close(problem.signal_d2y(coords), hess[:, 1, 1:2], atol=1e-12, rtol=0)
    laplacian = hess[:, 0, 0] + hess[:, 1, 1]
    torch.testing.assert_close(problem.signal_laplacian(coords), laplacian[:, None], atol=1e-12, rtol=0)


def test_the_physics_losses_vanish_on_the_signal_itself():
    problem = deqbench.get_problem("inr", "quick")
    x = problem.x
    grad, hess = autograd_derivatives(problem, x)
    laplacian = (hess[:, 0, 0] + hess[:, 1, 1])[:, None]
    # the autograd derivatives of s where the DEQ's gradient and Laplacian would go
    assert float(problem.gradient_mismatch(x, grad)) < 1e-24
    assert float(problem.laplacian_mismatch(x, laplacian)) < 1e-24
    # and a wrong candidate is penalised
    assert float(problem.gradient_mismatch(x, grad.flip(1))) > 1e-3
    assert float(problem.laplacian_mismatch(x, hess[:, 0, 0:1])) > 1e-3


def test_the_losses_read_the_head_on_the_derivatives():
    problem = deqbench.get_problem("inr", "quick")
    theta, x = problem.theta, problem.x
    generator = torch.Generator().manual_seed(4)
    z, z_x, z_y, z_xx, z_yy = (
        torch.randn(problem.batch, problem.m, generator=generator, dtype=torch.float64) for _ in range(5)
    )
    C, gradient = theta["C"], problem.signal_gradient(x)
    expected = torch.mean((z_x @ C.T - gradient[:, 0:1]) ** 2 + (z_y @ C.T - gradient[:, 1:2]) ** 2)
    d = {"z_x": z_x, "z_y": z_y}
    torch.testing.assert_close(problem.physics_loss(theta, x, z, d), expected, atol=1e-14, rtol=0)
    expected2 = torch.mean(((z_xx + z_yy) @ C.T - problem.signal_laplacian(x)) ** 2)
    d2 = {"z_xx": z_xx, "z_yy": z_yy}
    torch.testing.assert_close(problem.physics2_loss(theta, x, z, d2), expected2, atol=1e-14, rtol=0)


def test_the_layer_is_a_contraction():
    problem = deqbench.get_problem("inr", "quick")
    W = problem.theta["W"]
    assert float(torch.linalg.matrix_norm(W, ord=2)) < 1
    assert problem.directions["x"].tolist() == [1.0, 0.0] and problem.directions["y"].tolist() == [0.0, 1.0]
    assert float(problem.x.min()) >= 0 and float(problem.x.max()) <= 1


def autograd_laplacian(problem):
    """tr d2u/dp2 of u = output(theta, z*(p)) by autograd through the unrolled solve."""
    theta = problem.theta
    x = problem.x.clone().requires_grad_(True)
    z = problem.z_init()
    for _ in range(400):  # rho = 0.8: 0.8^400 is far below rounding
        z = problem.f(theta, x, z)
    u = problem.output(theta, z).sum()
    (grad,) = torch.autograd.grad(u, x, create_graph=True)
    second = [torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(2)]
    return (second[0] + second[1])[:, None].detach()


def test_the_laplacian_of_the_hessian_answer_is_the_trace_by_autograd():
    problem = deqbench.get_problem("inr", "quick")
    from_oracle = problem.laplacian(oracle(problem, "hessian").values["d2z_dx2"], problem.theta)
    unrolled = deqbench.get_strategy("unrolled").run("hessian", problem).values["d2z_dx2"]
    from_unrolled = problem.laplacian(unrolled, problem.theta)
    by_autograd = autograd_laplacian(problem)
    assert from_oracle.shape == (problem.batch, 1)
    scale = max(1.0, float(by_autograd.abs().max()))
    assert float((from_oracle - by_autograd).abs().max()) <= 1e-8 * scale
    assert float((from_unrolled - by_autograd).abs().max()) <= 1e-8 * scale
    assert float((from_oracle - from_unrolled).abs().max()) <= 1e-8 * scale
