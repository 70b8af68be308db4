"""The `convdeq` problem: a real convolution, a real group norm, and a contraction at z*.

(Every strategy x supported query on it, torch and JAX, is verified against the oracle by
`tests/test_verification.py`, and torch/JAX agreement by `tests/test_backends.py`, which
take every registered problem.)
"""

import numpy as np
import pytest
import torch
from helpers import problem_instance

import deqbench
from deqbench.problems.convdeq import PIXELS, dense_conv


def generator(seed=1):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("c_in, c_out", [(1, 3), (2, 2), (4, 5)])
def test_the_shift_matrix_convolution_is_conv2d_with_padding_one(c_in, c_out):
    problem = problem_instance("convdeq", "quick")
    u = torch.randn(3, c_in, 8, 8, generator=generator(), dtype=torch.float64)
    weight = torch.randn(c_out, c_in, 3, 3, generator=generator(2), dtype=torch.float64)
    expected = torch.nn.functional.conv2d(u, weight, padding=1).reshape(3, c_out, PIXELS)
    got = problem.conv(weight.reshape(c_out, c_in, 9), u.reshape(3, c_in, PIXELS))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    dense = dense_conv(weight.reshape(c_out, c_in, 9), problem.shifts)
    torch.testing.assert_close(u.reshape(3, -1) @ dense.T, expected.reshape(3, -1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_the_group_norm_gives_each_sample_and_group_zero_mean_unit_variance(preset):
    problem = problem_instance("convdeq", preset)
    c = problem.size["c"]
    u = 3 + 2 * torch.randn(5, c, PIXELS, generator=generator(), dtype=torch.float64)
    grouped = problem.group_norm(u).reshape(5, problem.groups, -1)
    torch.testing.assert_close(grouped.mean(dim=2), torch.zeros(5, problem.groups, dtype=torch.float64))
    variance = grouped.var(dim=2, unbiased=False)
    # eps = 1e-5 against a variance of about 4
    torch.testing.assert_close(variance, torch.ones_like(variance), rtol=0, atol=1e-5)
    # and it is a group norm, not a layer or instance norm, where groups differ from 1 and c
    torch.testing.assert_close(
        torch.nn.functional.group_norm(u, problem.groups, eps=problem.eps), problem.group_norm(u)
    )


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_the_layer_contracts_at_its_fixed_point(preset):
    problem = problem_instance("convdeq", preset)
    theta, x = problem.theta, problem.x
    z = problem.z_init()
    for _ in range(200):
        z = problem.f(theta, x, z)
    assert float((problem.f(theta, x, z) - z).abs().max()) < 1e-12
    for sample in range(min(problem.batch, 3)):
        xs = x[sample : sample + 1]
        jac = torch.func.jacrev(lambda v, xs=xs: problem.f(theta, xs, v[None])[0])(z[sample])
        radius = float(torch.linalg.eigvals(jac).abs().max())
        norm = float(torch.linalg.matrix_norm(jac, ord=2))
        assert radius <= norm <= problem.size["lipschitz"] + 1e-12
        assert radius < 1
        assert norm > 1e-3  # the z path is not negligible


def test_the_loss_is_the_cross_entropy_of_the_pooled_logits():
    problem = problem_instance("convdeq", "quick")
    z = torch.randn(problem.batch, problem.m, generator=generator(), dtype=torch.float64)
    logits = problem.output(problem.theta, z)
    pooled = z.reshape(problem.batch, problem.size["c"], PIXELS).mean(dim=2)
    torch.testing.assert_close(logits, pooled @ problem.theta["V"].T, rtol=1e-14, atol=1e-14)
    expected = torch.nn.functional.cross_entropy(logits, problem.labels)
    torch.testing.assert_close(problem.data_loss(problem.theta, problem.x, z), expected, rtol=1e-14, atol=0)


def test_torch_and_jax_give_the_same_layer_and_loss():
    problem = problem_instance("convdeq", "quick")
    jax_problem = problem.for_backend("jax")
    z = 0.5 * torch.randn(problem.batch, problem.m, generator=generator(), dtype=torch.float64)
    jz = jax_problem.on_backend(z)
    for name, t, j in [
        ("f", problem.f(problem.theta, problem.x, z), jax_problem.f(jax_problem.theta, jax_problem.x, jz)),
        (
            "loss",
            problem.data_loss(problem.theta, problem.x, z),
            jax_problem.data_loss(jax_problem.theta, jax_problem.x, jz),
        ),
    ]:
        np.testing.assert_allclose(np.asarray(j), t.numpy(), rtol=1e-12, atol=1e-13, err_msg=name)


def test_the_shape_contract_and_unsupported_queries():
    problem = deqbench.get_problem("convdeq", "quick")
    assert problem.m == problem.size["c"] * 64 and problem.n == 64
    assert problem.f(problem.theta, problem.x, problem.z_init()).shape == (problem.batch, problem.m)
    torch.testing.assert_close(
        torch.linalg.vector_norm(problem.directions["t"]), torch.tensor(1.0, dtype=torch.float64)
    )
    assert "n=64" in problem.unsupported_reason("hessian")
    assert problem.unsupported_reason("pinn_grad") is not None
    assert problem.unsupported_reason("grad") is None
