"""The oracle against closed forms (planted, linear), against autograd through plain fixed-point
iterations (tanh, vanderpol), and its failure modes.

Nothing here uses a strategy: the oracle is judged only against references of its own kind.

Tests internals by their path: oracle.torch_oracle's private steps.
"""

from __future__ import annotations

import math
from functools import cache

import pytest
import torch
from torch.func import jvp

import deqbench
from deqbench.harness.oracle import OracleAnswer, OracleError, oracle, relative_error, relative_errors
from deqbench.harness.oracle import torch_oracle as oracle_module
from deqbench.problems.base import supported_queries
from deqbench.queries import QUERIES, UnsupportedQueryError

CLOSED_FORM_TOL = 1e-9
#: Fixed-point iterations for the autograd reference: contraction <= 0.8 leaves 0.8^150 ~ 3e-15
#: (times ~150 for the derivatives of the iterates), far below AUTOGRAD_TOL.
PICARD_ITERATIONS = 150
AUTOGRAD_TOL = 1e-9
#: The error estimates come from finite differences: around 1e-11 on these problems.
ESTIMATE_TOL = 1e-8

CLOSED_FORM_INSTANCES = [("quick", 0), ("quick", 1), ("default", 2)]


@cache
def instance(name: str, preset: str = "quick", seed: int = 0, dtype: torch.dtype = torch.float64):
    return deqbench.get_problem(name, preset, seed=seed, dtype=dtype)


@cache
def cached_oracle(name: str, query: str, preset: str = "quick", seed: int = 0) -> OracleAnswer:
    return oracle(instance(name, preset, seed), query)


# ------------------------------------------------------------- closed forms
@pytest.mark.parametrize("query", list(QUERIES))
@pytest.mark.parametrize(("preset", "seed"), CLOSED_FORM_INSTANCES)
@pytest.mark.parametrize("name", ["planted", "linear"])
def test_oracle_matches_closed_form(name, preset, seed, query):
    problem = instance(name, preset, seed)
    assert query in supported_queries(problem)
    answer = cached_oracle(name, query, preset, seed)
    reference = problem.reference(query)
    for key, value in answer.values.items():
        assert value.dtype == torch.float64 and value.device.type == "cpu"
        assert value.shape == reference[key].shape, key
    errors = relative_errors(answer.values, reference)
    assert max(errors.values()) <= CLOSED_FORM_TOL, errors


@pytest.mark.parametrize("query", list(QUERIES))
@pytest.mark.parametrize("name", ["planted", "linear"])
def test_error_estimate_is_small_and_finite(name, query):
    answer = cached_oracle(name, query)
    assert set(answer.error_estimate) == set(answer.values)
    for key, estimate in answer.error_estimate.items():
        assert math.isfinite(estimate) and 0 <= estimate <= ESTIMATE_TOL, (key, estimate)
    assert answer.query == query and answer.method


def test_planted_gradients_in_parameters_z_star_ignores_are_exact_zeros():
    """z* = h(x) does not depend on A or D: rounding noise must not pose as a gradient."""
    for query in ("grad", "pinn_grad", "pinn2_grad"):
        values = cached_oracle("planted", query).values
        assert not values["A"].any() and not values["D"].any()
        assert values["C"].norm() > 0


# ------------------------------------------------- the estimate is not vacuous
def test_error_estimates_see_a_wrong_value():
    problem = instance("tanh").to("cpu", torch.float64)
    z_star = oracle_module.newton_fixed_point(problem, problem.theta, problem.x, problem.z_init())
    e = problem.direction("jvp")
    v = cached_oracle("tanh", "jvp").values["dz_dt"]
    assert oracle_module.estimate_jvp_error(problem, z_star, e, 1.001 * v) > 1e-4

    gradient = cached_oracle("tanh", "pinn_grad").values["W"]
    wrong = gradient + 1e-3 * gradient.norm() * torch.randn(gradient.shape, dtype=gradient.dtype)
    assert oracle_module.estimate_gradient_error(problem, "pinn_grad", z_star, "W", wrong) > 1e-5


# ------------------------------------------- real problems: autograd reference
def picard_fixed_point(problem, theta, x):
    """z* by plain fixed-point iteration, every step recorded by autograd."""
    z = problem.z_init()
    for _ in range(PICARD_ITERATIONS):
        z = problem.f(theta, x, z)
    return z


def along(problem, theta, e):
    """tau -> z*(x + tau e)."""
    return lambda tau: picard_fixed_point(problem, theta, problem.x + tau * e)


def picard_tangents(problem, theta, e):
    """(z*, dz*/dtau, d2z*/dtau2) along e by nested forward mode through the iterations."""
    tau = torch.zeros((), dtype=problem.dtype)
    one = torch.ones_like(tau)
    path = along(problem, theta, e)
    (z, v), (_, w) = jvp(lambda t: jvp(path, (t,), (one,)), (tau,), (one,))
    return z, v, w


def picard_partial(problem, theta, x, index):
    """A named partial of z* by nested forward mode through the iterations, one direction of
    the multi-index a level."""
    if not index:
        return picard_fixed_point(problem, theta, x)
    e, zero = problem.directions[index[0]], torch.zeros((), dtype=problem.dtype)

    def along_e(tau):
        return picard_partial(problem, theta, x + tau * e, index[1:])

    return jvp(along_e, (zero,), (torch.ones_like(zero),))[1]


def picard_input_hessian(problem):
    """(batch, m, n, n), one mixed second derivative d2z*/ds dt along (e_k, e_l) at a time."""
    theta, x = problem.theta, problem.x
    unit = torch.eye(problem.n, dtype=problem.dtype)
    zero, one = torch.zeros((), dtype=problem.dtype), torch.ones((), dtype=problem.dtype)
    hessian = torch.zeros(problem.batch, problem.m, problem.n, problem.n, dtype=problem.dtype)
    for k in range(problem.n):
        for l in range(k, problem.n):

            def slope_along_l(s, k=k, l=l):
                def path(t):
                    return picard_fixed_point(problem, theta, x + s * unit[k] + t * unit[l])

                return jvp(path, (zero,), (one,))[1]

            mixed = jvp(slope_along_l, (zero,), (one,))[1]
            hessian[..., k, l] = hessian[..., l, k] = mixed
    return hessian


def picard_reference(problem, query):
    theta = problem.theta
    if query == "forward":
        z = picard_fixed_point(problem, theta, problem.x)
        return {"z_star": z, "output": problem.output(theta, z)}
    if query in ("jvp", "jvp2"):
        _, v, w = picard_tangents(problem, theta, problem.direction(query))
        return {"dz_dt": v} if query == "jvp" else {"d2z_dt2": w}
    if query == "hessian":
        return {"d2z_dx2": picard_input_hessian(problem)}
    leaves = {name: value.detach().clone().requires_grad_(True) for name, value in theta.items()}
    if query == "grad":
        loss = problem.data_loss(leaves, problem.x, picard_fixed_point(problem, leaves, problem.x))
    else:
        physics_loss, partials = problem.physics_query(query)
        d = {name: picard_partial(problem, leaves, problem.x, index) for name, index in partials.items()}
        loss = physics_loss(leaves, problem.x, picard_fixed_point(problem, leaves, problem.x), d)
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
    return dict(zip(leaves, grads, strict=True))


PICARD_CASES = [(name, query) for name in ("tanh", "vanderpol") for query in QUERIES]
# inr's losses are on several partials at once (u_x and u_y; u_xx and u_yy)
PICARD_CASES += [("inr", "pinn_grad"), ("inr", "pinn2_grad")]


@pytest.mark.parametrize(("name", "query"), PICARD_CASES)
def test_oracle_matches_autograd_through_iterations(name, query):
    problem = instance(name)
    if query not in supported_queries(problem):
        pytest.skip(problem.unsupported_reason(query))
    answer = cached_oracle(name, query)
    errors = relative_errors(answer.values, picard_reference(problem, query))
    assert max(errors.values()) <= AUTOGRAD_TOL, errors
    assert max(answer.error_estimate.values()) <= ESTIMATE_TOL, answer.error_estimate


def test_hessian_along_the_direction_is_jvp2():
    """e^T (d2z*/dx2) e = d2z*/dt2: the two second-order routes agree."""
    e = instance("tanh").direction("jvp2")
    hessian = cached_oracle("tanh", "hessian").values["d2z_dx2"]
    along_e = torch.einsum("bikl,k,l->bi", hessian, e, e)
    assert relative_error(along_e, cached_oracle("tanh", "jvp2").values["d2z_dt2"]) <= 1e-12


# ------------------------------------------------------------------- dtypes
@pytest.mark.parametrize(("name", "query"), [("planted", "jvp2"), ("tanh", "pinn_grad"), ("tanh", "forward")])
def test_float32_instance_gets_a_float64_answer(name, query):
    single = instance(name, dtype=torch.float32)
    answer = oracle(single, query)
    assert single.dtype == torch.float32  # the caller's instance is left as it was
    for value in answer.values.values():
        assert value.dtype == torch.float64 and value.device.type == "cpu"
    # The float32 instance holds the float64 one's numbers rounded to float32 (~6e-8
    # relative), so the answers agree to that rounding times the problem's conditioning.
    errors = relative_errors(answer.values, cached_oracle(name, query).values)
    assert max(errors.values()) <= 1e-5, errors
    assert max(errors.values()) > 0  # and really were computed from the rounded inputs


def test_oracle_leaves_the_thread_count_alone():
    threads = torch.get_num_threads()
    oracle(instance("linear"), "jvp")
    assert torch.get_num_threads() == threads


# ----------------------------------------------------------------- failures
def test_no_fixed_point_raises_oracle_error():
    """z -> z + 1 has no fixed point (and I - J is singular): Newton must give up clearly."""
    x = torch.zeros(2, 1, dtype=torch.float64)
    problem = deqbench.FunctionProblem(
        f=lambda theta, x, z: z + theta["a"] + 0 * x.sum(dim=1, keepdim=True),
        theta={"a": torch.ones(1, dtype=torch.float64)},
        x=x,
        m=3,
    )
    with pytest.raises(OracleError, match="Newton did not reach"):
        oracle(problem, "forward")


def test_repelling_fixed_point_raises_oracle_error():
    """With |W| = 3 Newton still finds a fixed point, but not one the DEQ's iteration reaches."""
    problem = deqbench.get_problem("tanh", "quick", rho=3.0)
    with pytest.raises(OracleError, match="not attracting"):
        oracle(problem, "jvp")


@pytest.mark.parametrize(
    ("rows", "certified"),
    [
        ([[0.5, 100.0], [0.0, 0.5]], True),  # rho 0.5, norm 100: certified by J^32
        ([[0.999, 0.0], [0.0, 0.999]], False),  # rho < 1 but too close: left to eigvals
        ([[1.01, 0.0], [0.0, 0.1]], False),  # repelling: never certified
        ([[0.0, 2.0], [-2.0, 0.0]], False),  # rho 2, a rotation
    ],
)
def test_attracting_certificate_is_a_proof_and_eigvals_decide_the_rest(rows, certified):
    jacobian = torch.tensor([rows, [[0.1, 0.0], [0.0, 0.2]]], dtype=torch.float64)
    assert oracle_module.certified_attracting(jacobian) is certified
    radius = float(torch.linalg.eigvals(jacobian).abs().max())
    if certified:
        assert radius < 1
    if radius < 1:
        oracle_module.check_attracting(instance("tanh"), jacobian)
    else:
        with pytest.raises(OracleError, match="not attracting"):
            oracle_module.check_attracting(instance("tanh"), jacobian)


def test_unsupported_and_unknown_queries():
    wide = deqbench.get_problem("tanh", "quick", n=9)
    with pytest.raises(UnsupportedQueryError, match="dense Hessian"):
        oracle(wide, "hessian")
    with pytest.raises(ValueError, match="unknown query"):
        oracle(instance("tanh"), "jvp3")
