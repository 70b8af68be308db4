"""`mondeq`: the monotone parametrisation and the splitting's contraction.

(Every strategy x query on it, torch and JAX, is verified against the oracle, and the known
wrong second-order rules caught, by `tests/test_verification.py`.)
"""

import pytest
import torch

import deqbench


def dense_weight(problem):
    A, B = problem.theta["A"], problem.theta["B"]
    eye = torch.eye(problem.m, dtype=A.dtype)
    return (1 - problem.mono) * eye - A.T @ A + B - B.T, eye


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_mondeq_is_strongly_monotone_and_its_splitting_contracts(preset):
    problem = deqbench.get_problem("mondeq", preset)
    W, eye = dense_weight(problem)
    symmetric = eye - (W + W.T) / 2
    assert float(torch.linalg.eigvalsh(symmetric).min()) >= problem.mono - 1e-12
    L = float(torch.linalg.matrix_norm(eye - W, ord=2))
    assert abs(problem.lipschitz - L) <= 1e-6 * L  # the power-iteration estimate
    step = eye - problem.alpha * (eye - W)
    assert float(torch.linalg.matrix_norm(step, ord=2)) < 1


def test_mondeq_applies_w_matrix_free():
    problem = deqbench.get_problem("mondeq", "quick")
    W, _ = dense_weight(problem)
    z = torch.randn(problem.batch, problem.m, dtype=torch.float64)
    assert torch.allclose(problem.weight_t(problem.theta, z), z @ W.T, atol=1e-14)
    assert torch.allclose(problem.weight(problem.theta, z), z @ W, atol=1e-14)
