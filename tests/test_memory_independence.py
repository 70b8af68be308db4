"""What autograd saves: flat in iterations for `analytic`, growing for `unrolled`."""

import pytest

import deqbench
from deqbench.harness.worker import saved_tensor_bytes


def saved_bytes(strategy: str, query: str, iterations: int) -> int:
    # Tolerance 0 forces exactly `iterations` steps in every solve, forward and backward.
    settings = dict(f_tol=0.0, b_tol=0.0, f_max_iter=iterations, b_max_iter=iterations)
    problem = deqbench.get_problem("tanh", "quick")
    with saved_tensor_bytes() as meter:
        deqbench.get_strategy(strategy, **settings).run(query, problem)
    return meter.peak_bytes


@pytest.mark.parametrize("query", ["grad", "pinn_grad", "pinn2_grad"])
def test_analytic_saved_bytes_do_not_grow_with_iterations(query):
    few, many = saved_bytes("analytic", query, 15), saved_bytes("analytic", query, 60)
    assert few > 0  # the meter sees analytic's graphs at all
    assert abs(many - few) <= 0.10 * few, (few, many)


@pytest.mark.parametrize("query", ["grad", "pinn_grad"])
def test_unrolled_saved_bytes_grow_with_iterations(query):
    few, many = saved_bytes("unrolled", query, 15), saved_bytes("unrolled", query, 60)
    assert many >= 3 * few, (few, many)


def test_iterative_backward_saved_bytes_grow_with_backward_iterations():
    few, many = (
        saved_bytes("iterative-backward", "pinn_grad", 15),
        saved_bytes("iterative-backward", "pinn_grad", 60),
    )
    assert many >= 2 * few, (few, many)
