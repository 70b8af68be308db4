"""What is JAX-specific about the JAX strategies and solvers.

Their accuracy against the oracle (every JAX strategy x problem x query, 1e-8) is
test_verification's: it runs every registered strategy, the JAX ones included. Here: the
JAX solvers take the torch solvers' steps; the implicit rule composes in every mode
(jacfwd(grad) equals jacrev(grad)); a solve that stops short is flagged from inside
compiled code; a query compiles once.
"""

from __future__ import annotations

import functools

import pytest

pytest.importorskip("jax")

import numpy as np  # noqa: E402
from helpers import TIGHT, oracle_answer, problem_instance  # noqa: E402

import deqbench  # noqa: E402
from deqbench import jax_solvers, solvers  # noqa: E402
from deqbench.backends import import_jax, to_numpy  # noqa: E402
from deqbench.harness.oracle import relative_errors  # noqa: E402
from deqbench.harness.run import own_strategy_names  # noqa: E402

jax = import_jax()
jnp = jax.numpy

#: deqbench's own; the JAX peers (optimistix, jaxopt) report their solves their own way: test_peers.
JAX_STRATEGIES = [n for n in own_strategy_names() if deqbench.STRATEGIES.get(n).backend == "jax"]
#: Compiling is what costs here: solvers that compile fastest where the solver does not matter.
PLAIN = {"f_solver": "fixed_point", "b_solver": "fixed_point"}


@pytest.fixture(scope="module")
def tanh():
    """tanh quick, torch instance and its JAX copy."""
    problem = problem_instance("tanh", "quick")
    return problem, problem.for_backend("jax")


def layer(jp):
    return lambda z: jp.f(jp.theta, jp.x, z)


def test_the_jax_strategies_are_registered():
    assert {"jax-unrolled", "jax-implicit"} <= set(JAX_STRATEGIES)


# ------------------------------------------------------------------- solvers
@pytest.mark.parametrize("name", list(solvers.SOLVERS))
def test_jax_solvers_take_the_torch_solvers_steps(tanh, name):
    problem, jp = tanh
    for max_iter in (500, 2):  # converged, and stopped short
        torch_solution = solvers.solve(
            name,
            lambda z: problem.f(problem.theta, problem.x, z),
            problem.z_init(),
            tol=1e-10,
            max_iter=max_iter,
            phase="forward",
        )
        solve = functools.partial(jax_solvers.solve, name, layer(jp), tol=1e-10, max_iter=max_iter)
        z, info = jax.jit(solve)(jp.z_init())
        stats = torch_solution.stats
        assert (int(info.iterations), int(info.nfev), bool(info.converged)) == (
            stats.iterations,
            stats.nfev,
            stats.converged,
        )
        assert float(info.residual) == pytest.approx(stats.residual, rel=1e-3)
        np.testing.assert_allclose(np.asarray(z), to_numpy(torch_solution.z), rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", list(jax_solvers.SOLVERS))
def test_iterate_takes_the_steps_of_solve(tanh, name):
    """What jax-unrolled differentiates is the forward solve itself (reverse mode through
    it: test_unrolled_through_anderson_mixing_is_exact, and test_verification)."""
    _, jp = tanh
    z, info = jax.jit(functools.partial(jax_solvers.solve, name, layer(jp), tol=1e-12, max_iter=500))(
        jp.z_init()
    )
    steps = int(info.iterations)
    iterate = functools.partial(jax_solvers.iterate, name, layer(jp), iterations=steps, tol=1e-12)
    z_steps, steps_info = jax.jit(iterate)(jp.z_init())
    np.testing.assert_array_equal(np.asarray(z_steps), np.asarray(z))
    assert bool(steps_info.converged) and int(steps_info.iterations) == steps
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        jax_solvers.iterate(name, layer(jp), jp.z_init(), 0, tol=1e-12)


def test_a_solve_traces_under_vmap_and_a_zero_solution_converges_at_once():
    def solve(x):
        layer = lambda z: jnp.tanh(0.5 * z + x)  # noqa: E731
        return jax_solvers.solve("anderson", layer, jnp.zeros_like(x), tol=1e-12, max_iter=100)

    stacked = jnp.stack([jnp.full((2, 3), 0.5), jnp.full((2, 3), -1.0)])
    batched, info = jax.jit(jax.vmap(solve))(stacked)
    one_by_one = jax.jit(lambda xs: [solve(x)[0] for x in xs])(stacked)
    np.testing.assert_allclose(np.asarray(batched), np.stack(one_by_one), atol=1e-14)
    assert bool(jnp.all(info.converged))
    zero_solve = functools.partial(
        jax_solvers.solve, "fixed_point", lambda z: 0.5 * z, tol=1e-12, max_iter=100
    )
    _, zero = jax.jit(zero_solve)(jnp.zeros((2, 3)))
    assert (int(zero.iterations), bool(zero.converged), float(zero.residual)) == (1, True, 0.0)


def test_a_blown_up_solve_is_not_converged():
    blow_up = functools.partial(
        jax_solvers.solve, "fixed_point", lambda z: z * jnp.nan, tol=1e-10, max_iter=50
    )
    _, info = jax.jit(blow_up)(jnp.ones((2, 3)))
    assert not bool(info.converged) and int(info.iterations) == 1


def test_an_unknown_solver_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown solver 'newton'; known: fixed_point, anderson"):
        jax_solvers.solve("newton", lambda z: z, jnp.zeros((1, 1)), tol=1e-10, max_iter=5)


# --------------------------------------------------------- the implicit rule
def test_forward_over_reverse_equals_reverse_over_reverse_through_jax_implicit(tanh):
    """The tangent rule's linear solve is transposable and differentiable again: the
    Hessian of a loss of z* in a parameter is the same in both modes, and symmetric (in b
    alone: the full theta's Hessians take 30 s to compile; b moves J through tanh')."""
    _, jp = tanh
    strategy = deqbench.get_strategy("jax-implicit", **TIGHT, **PLAIN)
    z_star = strategy.fixed_point(jp)

    def loss(b):
        theta = {**jp.theta, "b": b}
        return jp.data_loss(theta, jp.x, z_star(theta, jp.x))

    b = jp.theta["b"]
    forward_over_reverse = np.asarray(jax.jit(jax.jacfwd(jax.grad(loss)))(b))
    reverse_over_reverse = np.asarray(jax.jit(jax.jacrev(jax.grad(loss)))(b))
    scale = np.linalg.norm(reverse_over_reverse)
    assert np.linalg.norm(forward_over_reverse - reverse_over_reverse) <= 1e-10 * scale
    assert np.linalg.norm(forward_over_reverse - forward_over_reverse.T) <= 1e-10 * scale
    assert strategy.solves and all(s.converged for s in strategy.solves)


def test_unrolled_through_anderson_mixing_is_exact(tanh):
    """Reverse mode through Anderson's weights (not only plain steps, the default)."""
    problem, _ = tanh
    result = deqbench.get_strategy("jax-unrolled", **TIGHT, f_solver="anderson").run("grad", problem)
    assert result.converged and result.solves[0].solver == "anderson"
    errors = relative_errors(result.values, oracle_answer("tanh", "quick", "grad").values)
    assert max(errors.values()) <= 1e-8, errors


# ------------------------------------------------------------ solve reports
@pytest.mark.parametrize("name", JAX_STRATEGIES)
def test_a_forward_solve_stopped_by_max_iter_is_flagged(tanh, name):
    problem, _ = tanh
    result = deqbench.get_strategy(name, **PLAIN, f_max_iter=2).run("forward", problem)
    forward = [s for s in result.solves if s.phase == "forward"]
    assert not result.converged
    assert forward and all(s.iterations == 2 and not s.converged for s in forward)
    assert all(s.residual > s.tol for s in forward)


@pytest.mark.parametrize("name", JAX_STRATEGIES)
def test_a_backward_solve_stopped_by_max_iter_is_flagged(tanh, name):
    problem, _ = tanh
    result = deqbench.get_strategy(name, **PLAIN, b_max_iter=2).run("jvp", problem)
    backward = [s for s in result.solves if s.phase == "backward"]
    if name == "jax-unrolled":  # no backward solve: differentiates through the forward steps
        assert not backward and result.converged
        return
    assert backward and not result.converged
    assert all(s.iterations == 2 and not s.converged for s in backward)
    assert all(s.converged for s in result.solves if s.phase == "forward")


@pytest.mark.parametrize("name", JAX_STRATEGIES)
def test_jax_forward_solves_take_as_many_steps_as_torch_ones(tanh, name):
    problem, _ = tanh
    jax_forward = deqbench.get_strategy(name, **PLAIN).run("forward", problem).solves
    torch_forward = deqbench.get_strategy("unrolled", **PLAIN).run("forward", problem).solves
    assert [(s.solver, s.iterations, s.converged) for s in jax_forward] == [
        (s.solver, s.iterations, s.converged) for s in torch_forward
    ]


# ----------------------------------------------------------------- compiling
@pytest.mark.parametrize("name", JAX_STRATEGIES)
def test_a_query_compiles_once(tanh, name):
    """After compile(), runs call the executable: f is never traced again."""
    problem, _ = tanh
    jp = problem.for_backend("jax")  # its own copy: f is wrapped on this instance only
    traces = []
    f = jp.f

    def counted(theta, x, z):
        traces.append(1)
        return f(theta, x, z)

    jp.f = counted
    strategy = deqbench.get_strategy(name, **PLAIN)
    info = strategy.compile("jvp", jp)
    assert info.seconds > 0 and traces
    traced = len(traces)
    first, second = strategy.run("jvp", jp), strategy.run("jvp", jp)
    assert len(traces) == traced
    assert first.converged and second.converged and len(first.solves) == len(second.solves)
    np.testing.assert_array_equal(np.asarray(first.values["dz_dt"]), np.asarray(second.values["dz_dt"]))
