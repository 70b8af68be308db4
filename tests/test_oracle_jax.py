"""The JAX oracle against the torch oracle, against closed forms, and its failure modes.

The two oracles share no code (harness/oracle/jax_oracle.py says how each computes), so their
agreement to 1e-10 on every problem and query is evidence about both. Each answer is
computed once per session (``jax_answer``), and the torch oracle's once (``helpers``).
"""

from __future__ import annotations

import math
import subprocess
import sys
from functools import cache

import pytest
import torch
from helpers import oracle_answer, problem_instance

import deqbench
from deqbench.harness.oracle import OracleAnswer, OracleError, relative_error, relative_errors
from deqbench.harness.oracle import jax_oracle as oracle_jax
from deqbench.problems.base import FunctionProblem, supported_queries
from deqbench.queries import UnsupportedQueryError

pytest.importorskip("jax")

#: The two oracles, each float64 and each converged to 1e-13, agree to this (they do to ~1e-13).
ORACLES_AGREE_TOL = 1e-10
#: planted and linear have every answer in closed form; the oracle meets them to ~1e-14.
CLOSED_FORM_TOL = 1e-12
#: The error estimates come from differences and Newton corrections: ~1e-11 and below here.
ESTIMATE_TOL = 1e-8

NAMES = ["tanh", "vanderpol", "planted", "linear"]
CASES = [(name, query) for name in NAMES for query in supported_queries(problem_instance(name))]
# named partials over two directions, the mixed u_xy among them (JAX's op-by-op compiles
# make the third-order ones of these problems slow; planted's mixed z_txx stands for them)
CASES += [("inr", "pinn2_grad"), ("mongeampere2d", "pinn_grad")]


@cache
def jax_answer(name: str, query: str) -> OracleAnswer:
    return oracle_jax.oracle(problem_instance(name), query)


# ------------------------------------------------------------- the torch oracle
@pytest.mark.parametrize(("name", "query"), CASES)
def test_agrees_with_the_torch_oracle(name, query):
    answer, reference = jax_answer(name, query), oracle_answer(name, "quick", query)
    assert answer.query == query and answer.method
    assert set(answer.values) == set(reference.values)
    for key, value in answer.values.items():
        assert value.dtype == torch.float64 and value.device.type == "cpu", key
        assert value.shape == reference.values[key].shape, key
    errors = relative_errors(answer.values, reference.values)
    assert max(errors.values()) <= ORACLES_AGREE_TOL, errors


# ---------------------------------------------------------------- closed forms
@pytest.mark.parametrize(("name", "query"), [case for case in CASES if case[0] in ("planted", "linear")])
def test_matches_the_closed_form(name, query):
    errors = relative_errors(jax_answer(name, query).values, problem_instance(name).reference(query))
    assert max(errors.values()) <= CLOSED_FORM_TOL, errors


def test_planted_gradients_in_parameters_z_star_ignores_are_exact_zeros():
    """z* = h(x) does not depend on A or D: rounding noise must not pose as a gradient."""
    for query in ("grad", "pinn_grad", "pinn2_grad"):
        values = jax_answer("planted", query).values
        assert not values["A"].any() and not values["D"].any()
        assert values["C"].norm() > 0


# ------------------------------------------------------------- error estimates
def test_error_estimates_are_small_finite_and_not_vacuous():
    estimates = []
    for name, query in CASES:
        answer = jax_answer(name, query)
        assert set(answer.error_estimate) == set(answer.values), (name, query)
        estimates += [(name, query, key, value) for key, value in answer.error_estimate.items()]
    too_large = [case for case in estimates if not (math.isfinite(case[3]) and 0 <= case[3] <= ESTIMATE_TOL)]
    assert not too_large
    assert any(case[3] > 0 for case in estimates)


def test_error_estimates_see_a_wrong_value():
    """The cross-checks are independent of the values they check: a value off by 1e-3 is seen."""
    jp = problem_instance("tanh").to("cpu", torch.float64).for_backend("jax")
    z_checked = oracle_jax.newton_fixed_point(jp, jp.theta, jp.x, jp.z_init())
    z_star = oracle_jax.implicit_fixed_point(jp, z_checked)
    e = jp.direction("jvp")
    v = jax_answer("tanh", "jvp").values["dz_dt"].numpy()
    assert oracle_jax.estimate_jvp_error(jp, z_star, e, 1.001 * v) > 1e-4

    gradient = jax_answer("tanh", "grad").values["W"].numpy()
    loss = oracle_jax.query_loss(jp, z_star, "grad")
    right = oracle_jax.estimate_gradient_error(loss, jp.theta, "W", gradient)
    wrong = oracle_jax.estimate_gradient_error(loss, jp.theta, "W", 1.001 * gradient)
    assert right <= ESTIMATE_TOL < 1e-4 < wrong


# ----------------------------------------------------------------- consistency
def test_hessian_along_the_direction_is_jvp2():
    """e^T (d2z*/dx2) e = d2z*/dt2: the polarized Hessian and the nested jvp agree."""
    e = problem_instance("tanh").direction("jvp2")
    hessian = jax_answer("tanh", "hessian").values["d2z_dx2"]
    along_e = torch.einsum("bikl,k,l->bi", hessian, e, e)
    assert relative_error(along_e, jax_answer("tanh", "jvp2").values["d2z_dt2"]) <= 1e-12


def test_float32_instance_gets_a_float64_answer():
    single = deqbench.get_problem("tanh", "quick", dtype=torch.float32)
    answer = oracle_jax.oracle(single, "forward")
    assert single.dtype == torch.float32  # the caller's instance is left as it was
    assert all(value.dtype == torch.float64 for value in answer.values.values())
    # The float32 numbers are the float64 ones rounded (~6e-8 relative): answers that close.
    errors = relative_errors(answer.values, jax_answer("tanh", "forward").values)
    assert 0 < max(errors.values()) <= 1e-5, errors


# -------------------------------------------------------------------- refusals
def test_refuses_a_torch_only_problem_with_the_reason():
    x = torch.zeros(2, 1, dtype=torch.float64)
    problem = FunctionProblem(
        f=lambda theta, x, z: torch.tanh(0.5 * z + theta["a"] + x.sum(dim=1, keepdim=True)),
        theta={"a": torch.ones(1, dtype=torch.float64)},
        x=x,
        m=3,
    )
    with pytest.raises(UnsupportedQueryError, match="runs under torch only"):
        oracle_jax.oracle(problem, "forward")


def test_unsupported_and_unknown_queries():
    wide = deqbench.get_problem("tanh", "quick", n=9)
    with pytest.raises(UnsupportedQueryError, match="dense Hessian"):
        oracle_jax.oracle(wide, "hessian")
    with pytest.raises(ValueError, match="unknown query"):
        oracle_jax.oracle(problem_instance("tanh"), "jvp3")


def test_repelling_fixed_point_raises_oracle_error():
    """With |W| = 3 (seed 0) Newton converges, to a point where the spectral radius of J is 1.69."""
    problem = deqbench.get_problem("tanh", "quick", rho=3.0)
    with pytest.raises(OracleError, match="not attracting"):
        oracle_jax.oracle(problem, "jvp")


def test_newton_that_does_not_converge_raises_oracle_error():
    """With |W| = 5 (seed 0) damped Newton stalls far from any fixed point."""
    problem = deqbench.get_problem("tanh", "quick", rho=5.0)
    with pytest.raises(OracleError, match="Newton did not reach"):
        oracle_jax.oracle(problem, "forward")


# ---------------------------------------------------------------------- imports
def test_importing_the_module_does_not_import_jax():
    code = "import deqbench.harness.oracle.jax_oracle, sys; assert 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
