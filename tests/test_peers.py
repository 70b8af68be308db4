"""Peers: other libraries' strategies, side by side with ours (strategies/_peers.py).

Every peer runs every query it supports on tanh and on one PINN problem (vanderpol) at
quick size, against the oracle. A query it claims exact must be right (1e-8); every other
one must be *measured* and land on the verdict known for that library
(docs/explanations/strategies.md): right where the library is right beyond its promise,
wrong (above 1e-4) where it is known to be wrong. A peer is not required to be right; its
known verdict is required not to change unnoticed. A refused query's reason must still be
what the library raises.
"""

from __future__ import annotations

import functools

import pytest
from helpers import TIGHT, oracle_answer, problem_instance

import deqbench
from deqbench.harness.oracle import relative_errors
from deqbench.harness.run import peer_names
from deqbench.queries import QUERIES
from deqbench.strategies import _peers

PROBLEMS = ["tanh", "vanderpol"]
EXACT_TOLERANCE = 1e-8
WRONG_THRESHOLD = 1e-4
RIGHT, WRONG = "right", "wrong"
ALL_RIGHT = dict.fromkeys(QUERIES, RIGHT)
#: What each peer answers, right or wrong, on both problems (measured: docs/explanations/strategies.md
#: and this suite). Queries a peer refuses are absent.
KNOWN = {
    # Implicit backward on a detached z*: first order right, everything above silently wrong.
    "torchdeq-ift": {
        "forward": RIGHT,
        "jvp": RIGHT,
        "grad": RIGHT,
        "jvp2": WRONG,
        "pinn_grad": WRONG,
        "pinn2_grad": WRONG,
        "hessian": WRONG,
    },
    # One phantom step: every derivative an approximation, wrong even at first order.
    "torchdeq-phantom": {"forward": RIGHT, **{q: WRONG for q in QUERIES if q != "forward"}},
    "optimistix-implicit": ALL_RIGHT,
    "optimistix-implicit-gmres": ALL_RIGHT,
    "optimistix-checkpoint": {"forward": RIGHT, "grad": RIGHT},
    # reverse only: its physics gradients by jax.jacrev partials, reverse over reverse
    "jaxopt-implicit": {"forward": RIGHT, "grad": RIGHT, "pinn_grad": RIGHT, "pinn2_grad": RIGHT},
}
#: Problems on which a third-order answer of a wrong rule can be right by accident: none here.
CASES = [
    pytest.param(peer, problem, query, id=f"{peer}-{problem}-{query}")
    for peer, verdicts in KNOWN.items()
    for problem in PROBLEMS
    for query in verdicts
]


def available(peer: str):
    reason = deqbench.STRATEGIES.get(peer).unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    return deqbench.get_strategy(peer, **TIGHT)


def test_the_issue_peers_are_registered_and_known():
    assert set(peer_names()) == set(KNOWN)
    for peer in KNOWN:
        cls = deqbench.STRATEGIES.get(peer)
        assert cls.peer and set(KNOWN[peer]) == set(cls.supported_queries)
        # what it claims exact, it must be right on
        assert all(KNOWN[peer][q] == RIGHT for q in cls.exact_queries)


@pytest.mark.parametrize(("peer", "problem", "query"), CASES)
def test_a_peer_lands_on_its_known_verdict(peer, problem, query):
    strategy = available(peer)
    instance = problem_instance(problem, "quick")
    assert strategy.unsupported_reason(query, instance) is None
    result = strategy.run(query, instance)
    assert result.solves and result.converged, result.solves
    errors = relative_errors(result.values, oracle_answer(problem, "quick", query).values)
    error = max(errors.values())
    if KNOWN[peer][query] == RIGHT:
        assert error <= EXACT_TOLERANCE, errors
    else:
        assert error > WRONG_THRESHOLD, errors


REFUSED = [
    pytest.param(peer, query, id=f"{peer}-{query}")
    for peer in KNOWN
    for query in QUERIES
    if query not in KNOWN[peer]
]


@pytest.mark.parametrize(("peer", "query"), REFUSED)
def test_a_refused_query_carries_the_error_the_library_raises(peer, query):
    """Run the composition the reason names anyway (the JAX transform of the library's
    output, compiled as the harness compiles it): it must still raise that very error."""
    strategy = available(peer)
    problem = problem_instance("tanh", "quick")
    reason = strategy.unsupported_reason(query, problem)
    assert reason == strategy.refusal(query) and "JAX raises" in reason
    jax = deqbench.backends.import_jax()
    jp = problem.for_backend("jax")
    with pytest.raises(Exception) as raised:  # noqa: B017 - the type is part of the message checked
        jax.jit(functools.partial(getattr(strategy, query), jp))(jp.theta, jp.x)
    assert reason.endswith(f"{type(raised.value).__name__}: {raised.value}")


def test_a_missing_or_other_version_of_a_library_is_unavailable_with_the_reason(monkeypatch):
    problem = problem_instance("tanh", "quick")
    cls = deqbench.STRATEGIES.get("torchdeq-ift")
    monkeypatch.setattr(cls, "requirements", (("torchdeq-not-installed", "0.1.0"),))
    expected = "requires torchdeq-not-installed==0.1.0: pip install 'deqbench[peers]'"
    assert cls.unavailable_reason() == expected
    assert cls().unsupported_reason("grad", problem) == expected
    monkeypatch.setattr(cls, "requirements", (("torch", "0.0.1"),))
    assert "requires torch==0.0.1 (the version its verdicts are of), found" in cls.unavailable_reason()
    assert _peers.EXTRA in cls.unavailable_reason()


def test_a_run_records_a_peer_its_differences_and_its_refusals(tmp_path):
    for peer in ("torchdeq-ift", "optimistix-checkpoint"):
        available(peer)
    rows = deqbench.run(
        "torchdeq-ift,optimistix-checkpoint,analytic",
        "tanh",
        "grad,jvp",
        quick=True,
        repeats=1,
        out=str(tmp_path / "run"),
        progress=False,
    )
    cells = rows.drop_duplicates("cell").set_index("cell")
    assert cells.loc["torchdeq-ift/tanh/grad", "status"] == "ok"
    assert cells.loc["torchdeq-ift/tanh/grad", "peer"] == "torchdeq 0.1.0"
    assert "1e-9" in cells.loc["torchdeq-ift/tanh/grad", "peer_differences"]
    refused = cells.loc["optimistix-checkpoint/tanh/jvp"]
    assert refused["status"] == "unsupported" and "custom_vjp" in refused["message"]
    assert (
        cells.loc["analytic/tanh/grad", "peer"] == "" == cells.loc["analytic/tanh/grad", "peer_differences"]
    )


def test_peers_are_a_keyword_of_the_strategy_option():
    from deqbench.harness.run import make_settings

    settings = make_settings(strategies="peers", problems="tanh", queries="grad", quick=True)
    assert [s.split(":")[-1] for s in settings.strategies] == peer_names()
