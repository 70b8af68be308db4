"""float32 through the Python API at default settings: no exception, converged, and right.

A strategy's tolerances default to the problem's dtype's (deqbench.tolerances), so
``deqbench.query(name, float32_problem, query)`` needs no settings at all; and Anderson's
least squares never raises on the singular systems that float32 rounding makes.
"""

import warnings
from functools import cache

import numpy as np
import pytest
import torch

import deqbench
from deqbench.backends import to_numpy
from deqbench.harness.oracle import oracle, relative_errors
from deqbench.harness.run import own_strategy_names
from deqbench.tolerances import solver_tol, verify_tol

PROBLEMS = ["tanh", "vanderpol"]
#: JAX strategies compile each cell (seconds apiece): float32 through JAX on one problem.
JAX_PROBLEMS = ["tanh"]


@cache
def float32_problem(name: str):
    return deqbench.get_problem(name, "quick", dtype=torch.float32)


@cache
def oracle_values(name: str, query: str):
    return oracle(float32_problem(name), query).values


def cases() -> list:
    return [
        pytest.param(strategy, problem, query, id=f"{strategy}-{problem}-{query}")
        for strategy in own_strategy_names()  # peers: tests/test_peers.py
        for problem in (JAX_PROBLEMS if deqbench.STRATEGIES.get(strategy).backend == "jax" else PROBLEMS)
        for query in deqbench.QUERIES
    ]


def answer(strategy, problem_name: str, query: str):
    """The query at default settings; a NotConvergedWarning fails the test."""
    problem = float32_problem(problem_name)
    reason = strategy.unsupported_reason(query, problem)
    if reason is not None:
        pytest.skip(reason)
    with warnings.catch_warnings():
        warnings.simplefilter("error", deqbench.NotConvergedWarning)
        return deqbench.query(strategy, problem, query)


@pytest.mark.parametrize(("name", "problem_name", "query"), cases())
def test_every_strategy_answers_float32_at_default_settings(name, problem_name, query):
    strategy = deqbench.get_strategy(name)
    result = answer(strategy, problem_name, query)
    assert result.converged, result.solves
    for value in result.values.values():  # torch tensors or JAX arrays, float32 either way
        assert np.isfinite(to_numpy(value)).all() and str(value.dtype).removeprefix("torch.") == "float32"
    if query in type(strategy).exact_queries:
        errors = relative_errors(result.values, oracle_values(problem_name, query))
        assert max(errors.values()) <= verify_tol(torch.float32), errors


@pytest.mark.parametrize("query", ["grad", "pinn_grad"])
def test_unrolled_through_anderson_is_right_in_float32(query):
    """Autograd through Anderson's weights (and any fallback step) stays finite and exact."""
    strategy = deqbench.get_strategy("unrolled", f_solver="anderson")
    result = answer(strategy, "tanh", query)
    errors = relative_errors(result.values, oracle_values("tanh", query))
    assert max(errors.values()) <= verify_tol(torch.float32), errors


def test_default_tolerances_follow_the_problems_dtype():
    strategy = deqbench.get_strategy("analytic")
    for dtype in (torch.float32, torch.float64):
        problem = deqbench.get_problem("tanh", "quick", dtype=dtype)
        result = strategy.run("pinn_grad", problem)
        iterative = {s.tol for s in result.solves if s.solver != "dense-lu"}
        assert iterative == {solver_tol(dtype)}
        # A small state's solves go through I - J LU-factored once; the check that its J is
        # per sample allows rounding (1e3 eps), never less than the dtype's tolerance.
        assert all(s.tol >= solver_tol(dtype) for s in result.solves if s.solver == "dense-lu")
    assert strategy.settings()["f_tol"] == "auto"
    assert strategy.settings(torch.float32)["b_tol"] == solver_tol(torch.float32)
    assert "f_tol=auto" in repr(strategy)


def test_an_explicit_tolerance_is_kept_in_float32():
    strategy = deqbench.get_strategy("analytic", f_tol=1e-3)
    result = strategy.run("forward", float32_problem("tanh"))
    assert result.solves[0].tol == 1e-3
    assert strategy.settings(torch.float32)["f_tol"] == 1e-3


@pytest.mark.parametrize("bad", [-1e-6, float("nan"), float("inf"), "tight", True])
def test_an_explicit_tolerance_must_be_a_finite_number(bad):
    with pytest.raises(ValueError, match=r"^b_tol must be a finite number >= 0[^\n]*$"):
        deqbench.get_strategy("analytic", b_tol=bad)


def test_tolerances_accept_a_dtype_or_its_name():
    assert solver_tol("float32") == solver_tol(torch.float32) == 1e-5
    assert verify_tol("float64") == verify_tol(torch.float64) == 1e-6
    with pytest.raises(ValueError, match=r"^unsupported dtype torch.float16; accepted: float64, float32$"):
        solver_tol(torch.float16)
    with pytest.raises(ValueError, match="unsupported dtype 'half'"):
        verify_tol("half")


# -------------------------------------------------------------------- the layer
def layer_gradients(problem, **settings):
    """z* through `analytic`'s layer, then the gradient of a loss on it in theta."""
    layer = deqbench.get_strategy("analytic", **settings).layer(problem)
    theta = {k: v.detach().clone().requires_grad_(True) for k, v in problem.theta.items()}
    z = layer(theta, problem.x)
    return torch.autograd.grad(z.square().sum(), list(theta.values()))


def test_the_layer_is_silent_at_default_settings_in_float32():
    problem = float32_problem("tanh")
    with warnings.catch_warnings():
        warnings.simplefilter("error", deqbench.NotConvergedWarning)
        gradients = layer_gradients(problem)
    assert all(torch.isfinite(g).all() for g in gradients)


def test_the_layer_warns_when_its_forward_solve_does_not_converge():
    problem = deqbench.get_problem("tanh", "quick")
    with pytest.warns(
        deqbench.NotConvergedWarning, match=r"forward solve did not converge: residual .* 2 iter"
    ):
        layer_gradients(problem, f_max_iter=2)


def test_the_layer_warns_when_a_backward_solve_does_not_converge():
    problem = deqbench.get_problem("tanh", "quick")
    with pytest.warns(
        deqbench.NotConvergedWarning, match=r"backward solve did not converge: residual .* 2 iter"
    ):
        layer_gradients(problem, b_max_iter=2)
