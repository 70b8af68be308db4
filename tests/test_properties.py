"""Property-based: `analytic` against the oracle on random contractive tanh DEQs."""

import pytest
from helpers import TIGHT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deqbench
from deqbench.harness.oracle import oracle, relative_errors

random_deqs = st.fixed_dictionaries(
    {
        "m": st.integers(1, 12),
        "n": st.integers(1, 4),
        "batch": st.integers(1, 3),
        "rho": st.floats(0.05, 0.95),
        "seed": st.integers(0, 2**31 - 1),
    }
)


@pytest.mark.parametrize("query", ["jvp", "jvp2", "grad", "pinn_grad", "pinn2_grad", "hessian"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deq=random_deqs)
def test_analytic_matches_the_oracle_on_random_contractive_deqs(query, deq):
    seed = deq.pop("seed")
    problem = deqbench.get_problem("tanh", "quick", seed=seed, **deq)
    result = deqbench.get_strategy("analytic", **TIGHT).run(query, problem)
    assert result.converged
    errors = relative_errors(result.values, oracle(problem, query).values)
    assert max(errors.values()) <= 1e-8, (deq, errors)
