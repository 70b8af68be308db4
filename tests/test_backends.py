"""Problems defined once: the same equations and numbers under torch and JAX.

Every problem that declares ``"jax"`` must give the same layer, head and loss values in both
frameworks to rounding, from the same numbers; a problem written against torch alone is
reported unavailable to JAX strategies with its reason, and a torch-only run never imports
JAX.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

import deqbench
from deqbench.backends import to_numpy
from deqbench.problems.base import PHYSICS_QUERIES, PROBLEMS, FunctionProblem

JAX_PROBLEMS = [name for name in PROBLEMS.names() if "jax" in PROBLEMS.get(name).backends]
ROUNDING = 1e-13


def test_every_shipped_problem_runs_under_jax():
    assert set(JAX_PROBLEMS) >= {"tanh", "vanderpol", "planted", "linear"}


def random_states(problem, generator):
    """A state z and a dict with a random (batch, m) array for every partial a loss names."""
    names = sorted({*problem.physics_partials, *problem.physics2_partials})
    draws = [0.5 * torch.randn(problem.batch, problem.m, generator=generator, dtype=torch.float64)]
    draws += [
        0.5 * torch.randn(problem.batch, problem.m, generator=generator, dtype=torch.float64) for _ in names
    ]
    return draws[0], dict(zip(names, draws[1:], strict=True))


def evaluations(problem, z, d):
    """Everything a problem's equations compute, at a given state and partials."""
    theta, x = problem.theta, problem.x
    values = {"f": problem.f(theta, x, z), "output": problem.output(theta, z)}
    values["data_loss"] = problem.data_loss(theta, x, z)
    for loss_name, partials_name in PHYSICS_QUERIES.values():
        loss = getattr(problem, loss_name)
        if loss is not None:
            values[loss_name] = loss(theta, x, z, {name: d[name] for name in getattr(problem, partials_name)})
    return values


@pytest.mark.parametrize("name", JAX_PROBLEMS)
def test_one_definition_gives_the_same_values_in_torch_and_jax(name):
    problem = deqbench.get_problem(name, "quick")
    jax_problem = problem.for_backend("jax")
    z, d = random_states(problem, torch.Generator().manual_seed(1))
    torch_values = evaluations(problem, z, d)
    jax_d = {name: jax_problem.on_backend(value) for name, value in d.items()}
    jax_values = evaluations(jax_problem, jax_problem.on_backend(z), jax_d)
    assert set(jax_values) == set(torch_values)
    for key, value in torch_values.items():
        assert type(jax_values[key]).__module__.startswith("jax"), key
        expected, got = to_numpy(value), to_numpy(jax_values[key])
        assert np.abs(got - expected).max() <= ROUNDING * max(1.0, np.abs(expected).max()), key


@pytest.mark.parametrize("name", JAX_PROBLEMS)
def test_the_jax_copy_holds_the_same_numbers(name):
    problem = deqbench.get_problem(name, "quick")
    jax_problem = problem.for_backend("jax")
    assert jax_problem.xp is not torch and problem.xp is torch
    for key, value in problem.theta.items():
        np.testing.assert_array_equal(to_numpy(jax_problem.theta[key]), to_numpy(value))
    np.testing.assert_array_equal(to_numpy(jax_problem.x), to_numpy(problem.x))
    assert jax_problem.for_backend("jax") is jax_problem  # converting twice is free
    with pytest.raises(ValueError, match="for_backend"):
        jax_problem.to("cpu")


def test_a_torch_only_problem_is_unavailable_to_jax_with_the_reason():
    x = torch.randn(3, 2, dtype=torch.float64)
    problem = FunctionProblem(
        f=lambda theta, x, z: torch.tanh(z @ theta["W"].T + x.sum(dim=1, keepdim=True)),
        theta={"W": 0.3 * torch.eye(4, dtype=torch.float64)},
        x=x,
        m=4,
    )
    reason = problem.backend_unavailable_reason("jax")
    assert "torch only" in reason and "self.xp" in reason
    jax_strategies = [n for n in deqbench.STRATEGIES.names() if deqbench.STRATEGIES.get(n).backend == "jax"]
    assert jax_strategies, "no JAX strategy registered"
    for name in jax_strategies:
        assert deqbench.get_strategy(name).unsupported_reason("forward", problem) == reason
    with pytest.raises(ValueError, match="torch only"):
        problem.for_backend("jax")
    assert deqbench.get_strategy("analytic").unsupported_reason("jvp", problem) is None


def test_an_unknown_backend_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown backend 'mxnet'; known: torch, jax"):
        deqbench.get_problem("tanh", "quick").for_backend("mxnet")


def test_a_torch_only_run_never_imports_jax(tmp_path):
    script = (
        "import sys, deqbench\n"
        "from deqbench.harness.run.matrix import build_matrix\n"
        "from deqbench.harness.cli.main import main\nfrom deqbench.harness.oracle import cache\n"
        "build_matrix(preset='quick')\n"
        "deqbench.run('analytic', 'tanh', 'jvp', out=sys.argv[1], quick=True, progress=False)\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], check=True, timeout=300)
