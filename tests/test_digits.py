"""The `digits` problem: real data and a true cross-entropy.

(Every strategy x supported query on it, torch and JAX, is verified against the oracle by
`tests/test_verification.py`, which takes every registered problem.)
"""

import torch
from helpers import problem_instance
from sklearn.datasets import load_digits

import deqbench
from deqbench.harness.run import build_matrix, own_strategy_names


def test_the_instance_holds_the_real_digits_in_a_seeded_order():
    problem = problem_instance("digits", "quick")
    digits = load_digits()
    indices = problem.indices.numpy()
    torch.testing.assert_close(problem.x, torch.from_numpy(digits.data[indices]) / 16, rtol=0, atol=0)
    assert problem.labels.tolist() == digits.target[indices].tolist()
    assert set(problem.labels.tolist()) <= set(range(10))
    assert problem.x.min() >= 0 and problem.x.max() <= 1
    assert torch.equal(deqbench.get_problem("digits", "quick").indices, problem.indices)


def test_the_loss_is_the_cross_entropy_of_the_logits():
    problem = problem_instance("digits", "quick")
    z = 3 * torch.randn(
        problem.batch, problem.m, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    logits = problem.output(problem.theta, z)
    expected = torch.nn.functional.cross_entropy(logits, problem.labels)
    torch.testing.assert_close(problem.data_loss(problem.theta, problem.x, z), expected, rtol=1e-14, atol=0)


def test_the_direction_is_the_unit_mean_image_and_the_hessian_is_left_out():
    problem = problem_instance("digits", "quick")
    direction = problem.directions["t"]
    torch.testing.assert_close(torch.linalg.vector_norm(direction), torch.tensor(1.0, dtype=torch.float64))
    assert (direction >= 0).all()
    assert "n=64" in problem.unsupported_reason("hessian")
    assert problem.unsupported_reason("pinn_grad") is not None


CELLS = [
    c
    for c in build_matrix(own_strategy_names(), problems=["digits"], preset="quick")
    if c.supported and c.expected_exact
]


def test_the_matrix_runs_grad_under_both_frameworks():
    backends = {deqbench.STRATEGIES.get(c.strategy).backend for c in CELLS if c.query == "grad"}
    assert backends == {"torch", "jax"}
