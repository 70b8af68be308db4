"""Every strategy x problem x supported query against the independent oracle (float64).

Peers (other libraries' code, ``Strategy.peer``) are left out: their verdicts are
tests/test_peers.py's, on two problems, since compiling every query on every problem would
cost CI minutes for libraries whose versions are pinned.

A strategy is held to 1e-8 relative error on every query it claims exact; the second-order
answers of `analytic-seed` (the seed's literal formula) and `implicit-vjp` (Bai et al.'s
backward, differentiated again) must be *caught*: their error is asserted to be large.
"""

import pytest
from helpers import TIGHT, oracle_answer, problem_instance

import deqbench
from deqbench.harness.oracle import relative_errors
from deqbench.harness.run import build_matrix, own_strategy_names
from deqbench.problems.base import PROBLEMS
from deqbench.queries import QUERIES

VERIFIED_PROBLEMS = PROBLEMS.names()  # every registered problem: a new file is verified at once
EXACT_TOLERANCE = 1e-8
#: The strategies known to be wrong above first order, and where that must show.
KNOWN_WRONG = {"analytic-seed", "implicit-vjp"}
CURVED_PROBLEMS = {"tanh", "vanderpol", "mondeq"}  # f_zz, f_xz non-zero: the dropped terms matter
CAUGHT_THRESHOLD = 1e-4

OWN_STRATEGIES = own_strategy_names()
CELLS = [
    c
    for c in build_matrix(strategies=OWN_STRATEGIES, problems=VERIFIED_PROBLEMS, preset="quick")
    if c.supported
]


#: The public layers' strategies (deqbench.nn.DEQ, deqbench.jax.fixed_point) answer through
#: the rules of `analytic`'s layer and `jax-implicit`, verified here on every problem: the
#: quick profile checks them on a few problems that between them hold every query, curvature
#: (f_zz, f_xz) and a planted fixed point; every problem with -m slow, and in the zoo run.
LAYER_STRATEGIES = {"nn-deq", "jax-fixed-point"}
LAYER_QUICK_PROBLEMS = {"tanh", "heat1d", "vanderpol", "planted"}


def with_marks(cell):
    slow = cell.strategy in LAYER_STRATEGIES and cell.problem not in LAYER_QUICK_PROBLEMS
    return pytest.param(cell, marks=pytest.mark.slow if slow else (), id=cell.id)


def answer(cell):
    problem = problem_instance(cell.problem, "quick")
    result = deqbench.get_strategy(cell.strategy, **TIGHT).run(cell.query, problem)
    assert result.converged, result.solves
    return relative_errors(result.values, oracle_answer(cell.problem, "quick", cell.query).values)


@pytest.mark.parametrize("cell", [with_marks(c) for c in CELLS if c.expected_exact])
def test_exact_strategies_match_the_oracle(cell):
    errors = answer(cell)
    assert max(errors.values()) <= EXACT_TOLERANCE, errors


WRONG_CELLS = [
    c
    for c in CELLS
    if c.strategy in KNOWN_WRONG and c.problem in CURVED_PROBLEMS and QUERIES[c.query].order >= 2
]


@pytest.mark.parametrize("cell", WRONG_CELLS, ids=lambda c: c.id)
def test_wrong_second_order_rules_are_caught(cell):
    errors = answer(cell)
    assert max(errors.values()) > CAUGHT_THRESHOLD, errors


def test_the_verified_matrix_covers_every_strategy_and_query():
    assert {c.strategy for c in CELLS} == set(OWN_STRATEGIES)
    # shipped(): a test file run earlier in this worker may have registered users' classes
    shipped = deqbench.STRATEGIES.shipped()
    assert set(shipped) - set(OWN_STRATEGIES) == {
        n for n in shipped if deqbench.STRATEGIES.get(n).peer is not None
    }
    assert {c.query for c in CELLS} == set(QUERIES)
    exact = {(c.strategy, c.query) for c in CELLS if c.expected_exact}
    for strategy in ("unrolled", "iterative-backward", "analytic"):
        assert {q for s, q in exact if s == strategy} == set(QUERIES)
    assert {q for s, q in exact if s == "implicit-vjp"} == {"forward", "jvp", "grad"}
    # on each curved problem: the seed's jvp2 and hessian, implicit-vjp's four above first order
    assert len(WRONG_CELLS) == len(CURVED_PROBLEMS) * (2 + 4)


def test_linear_deq_second_order_is_where_the_wrong_rules_happen_to_be_right():
    """On a linear layer f_zz = f_xz = 0: the terms the wrong rules drop vanish, so their
    second-order answers are right there. The check that catches them needs curvature."""
    cell = next(c for c in CELLS if c.id == "implicit-vjp/linear/jvp2")
    assert max(answer(cell).values()) <= EXACT_TOLERANCE
