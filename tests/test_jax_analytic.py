"""What is specific to `jax-analytic` (its accuracy on every query is test_verification's).

Its Taylor map (nested jvp) against jet, an independent Taylor-mode implementation; its
linearizations built outside the solvers' loops, whatever the solver calls where; Anderson
for the linear solves; and no JAX import for a torch-only run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("jax")

import numpy as np  # noqa: E402
from helpers import TIGHT, oracle_answer, problem_instance  # noqa: E402

import deqbench  # noqa: E402
from deqbench import jax_solvers  # noqa: E402
from deqbench.backends import import_jax  # noqa: E402
from deqbench.harness.oracle import relative_errors  # noqa: E402
from deqbench.strategies.jax_analytic import taylor_map  # noqa: E402

jax = import_jax()
jnp = jax.numpy


def exact(result, problem: str, query: str) -> float:
    assert result.converged, result.solves
    errors = relative_errors(result.values, oracle_answer(problem, "quick", query).values)
    return max(errors.values())


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_taylor_map_is_that_of_jet(order):
    """jet takes and returns derivative coefficients along x + tau e, z + sum tau^i/i! v_i:
    the same path, computed by another Taylor-mode implementation."""
    from jax.experimental.jet import jet

    jp = problem_instance("tanh", "quick").for_backend("jax")
    theta, x, e = jp.theta, jp.x, jp.direction("jvp")
    keys = jax.random.split(jax.random.PRNGKey(0), order + 1)
    z, *tangents = (0.3 * jax.random.normal(key, (jp.batch, jp.m)) for key in keys)
    x_series = [jnp.broadcast_to(e, x.shape), *(jnp.zeros_like(x) for _ in tangents[1:])]
    primal, series = jet(lambda x_, z_: jp.f(theta, x_, z_), (x, z), (x_series, tangents))
    ours = taylor_map(jp.f, theta, x, e, z, tangents)
    assert len(ours) == order + 1
    for mine, theirs in zip(ours, [primal, *series], strict=True):
        np.testing.assert_allclose(np.asarray(mine), np.asarray(theirs), rtol=1e-13, atol=1e-15)


def loop_only_fixed_point(name, g, z0, *, tol, max_iter):
    """Plain iteration that calls g inside its while_loop only (the shipped solvers evaluate
    g once before the loop, which would hide a linearization first made inside a loop)."""

    def unfinished(carry):
        _, k, residual = carry
        return (k < max_iter) & (residual > tol)

    def step(carry):
        z, k, _ = carry
        image = g(z)
        return image, k + 1, jax_solvers.worst_relative(image - z, image)

    start = (z0, jnp.int32(0), jnp.asarray(jnp.inf, z0.dtype))
    z, k, residual = jax.lax.while_loop(unfinished, step, start)
    return z, jax_solvers.SolveInfo(k, k, residual, residual <= tol)


@pytest.mark.parametrize("query", ["jvp2", "pinn2_grad"])
def test_linearizations_do_not_leak_out_of_a_solver_loop(monkeypatch, query):
    monkeypatch.setattr(jax_solvers, "solve", loop_only_fixed_point)
    result = deqbench.get_strategy("jax-analytic", **TIGHT).run(query, problem_instance("tanh", "quick"))
    assert exact(result, "tanh", query) <= 1e-8


def test_anderson_linear_solves_are_exact_too():
    strategy = deqbench.get_strategy("jax-analytic", **TIGHT, b_solver="anderson")
    result = strategy.run("pinn2_grad", problem_instance("vanderpol", "quick"))
    assert {s.solver for s in result.solves if s.phase == "backward"} == {"anderson"}
    assert exact(result, "vanderpol", "pinn2_grad") <= 1e-8


def test_a_torch_only_run_does_not_import_jax():
    code = (
        "import sys, deqbench; deqbench.STRATEGIES.get('jax-analytic'); "
        "deqbench.get_strategy('analytic').run('forward', deqbench.get_problem('tanh', 'quick')); "
        "assert 'jax' not in sys.modules, 'jax imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
