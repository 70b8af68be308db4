"""A layer that does not converge gives results flagged not converged, never silent numbers."""

import warnings

import pytest

import deqbench
from deqbench.harness.run import build_matrix, own_strategy_names

# rho = 3: W's spectral norm far above 1, where plain iteration of this tanh layer runs on
# without settling. (Anderson may still find a fixed point of a non-contractive layer: then
# the numbers are a genuine fixed point's, and its converged flag says so.)
EXPANSIVE = {"rho": 3.0}
PLAIN = {"f_solver": "fixed_point", "b_solver": "fixed_point", "f_max_iter": 200, "b_max_iter": 200}


@pytest.mark.parametrize(
    "cell",
    [c for c in build_matrix(own_strategy_names(), problems=["tanh"]) if c.supported],
    ids=lambda c: c.id,
)
def test_every_query_flags_a_divergent_forward_solve(cell):
    problem = deqbench.get_problem("tanh", "quick", **EXPANSIVE)
    strategy = deqbench.get_strategy(cell.strategy, **PLAIN)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow/NaN warnings from the runaway iterates
        result = strategy.run(cell.query, problem)
    forward = [s for s in result.solves if s.phase == "forward"]
    assert forward and not forward[0].converged
    assert not result.converged
    assert result.solver_totals()["forward_converged"] is False


def test_python_api_warns_when_a_result_did_not_converge():
    problem = deqbench.get_problem("tanh", "quick", **EXPANSIVE)
    with pytest.warns(deqbench.NotConvergedWarning, match="did not converge"):
        result = deqbench.query(deqbench.get_strategy("analytic", **PLAIN), problem, "jvp")
    assert not result.converged


def test_a_contractive_problem_converges_everywhere():
    problem = deqbench.get_problem("tanh", "quick")
    with warnings.catch_warnings():
        warnings.simplefilter("error", deqbench.NotConvergedWarning)
        for name in own_strategy_names():
            assert deqbench.query(name, problem, "grad").converged
