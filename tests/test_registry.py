"""Registries are built from the classes themselves, with clear errors."""

import pytest

import deqbench
from deqbench.problems.base import Problem
from deqbench.registry import DuplicateNameError, Registry, UnknownNameError
from deqbench.strategies.base import Strategy


def test_every_shipped_strategy_and_problem_is_registered():
    assert {"unrolled", "iterative-backward", "implicit-vjp", "analytic", "analytic-seed"} <= set(
        deqbench.STRATEGIES.names()
    )
    assert {"tanh", "vanderpol"} <= set(deqbench.PROBLEMS.names())


def test_unknown_name_error_lists_what_is_known():
    with pytest.raises(UnknownNameError) as info:
        deqbench.get_strategy("nope")
    message = str(info.value)
    assert "unknown strategy 'nope'" in message and "analytic" in message


def test_duplicate_name_is_refused():
    with pytest.raises(DuplicateNameError, match="duplicate strategy name 'analytic'"):

        class Impostor(Strategy):  # noqa: F841 - defining it is the test
            name = "analytic"


def test_a_new_strategy_is_one_class_and_nothing_else(monkeypatch):
    registry = Registry("strategy", "deqbench.strategies")
    monkeypatch.setattr("deqbench.strategies.base.STRATEGIES", registry)

    class Mine(Strategy):
        name = "mine"
        supported_queries = frozenset({"forward"})

        def forward(self, problem):
            return {"z_star": problem.z_init()}

    assert registry.get("mine") is Mine
    assert "mine" in registry.names()


def test_strategy_refuses_unknown_queries_in_its_declaration():
    with pytest.raises(TypeError, match="unknown queries"):

        class Confused(Strategy):  # noqa: F841
            name = "confused"
            supported_queries = frozenset({"jvp3"})


def test_problem_size_knobs_are_checked():
    with pytest.raises(ValueError, match="no size knob 'width'.*known: m, n, batch, rho"):
        deqbench.get_problem("tanh", width=3)
    with pytest.raises(ValueError, match="no size preset 'huge'"):
        deqbench.get_problem("tanh", "huge")


def test_problem_without_build_is_a_clear_error():
    class Empty(Problem):
        def build(self, generator, **size):
            pass

    with pytest.raises(TypeError, match="did not set `theta`"):
        Empty()


def test_unsupported_query_is_reported_not_raised_deep_inside():
    problem = deqbench.get_problem("tanh", "quick")
    strategy = deqbench.get_strategy("analytic-seed")
    assert "does not support query 'pinn_grad'" in strategy.unsupported_reason("pinn_grad", problem)
    with pytest.raises(deqbench.UnsupportedQueryError):
        strategy.run("pinn_grad", problem)
    with pytest.raises(ValueError, match="unknown query 'jvp3'"):
        strategy.run("jvp3", problem)


def test_all_means_what_deqbench_ships_not_what_a_users_file_registered():
    """A problem loaded from a user's file registers its class in this process; "all" (the
    run's default) still names only deqbench's own, so a later run never picks it up."""
    from pathlib import Path

    from deqbench.harness.references import resolve_class
    from deqbench.harness.run import make_settings
    from deqbench.problems.base import PROBLEMS

    fixture = Path(__file__).parent / "fixtures" / "user_problem.py"
    user_class = resolve_class(f"{fixture}:ShiftedTanh", "problem")
    assert user_class.name in PROBLEMS.names()
    assert user_class.name not in PROBLEMS.shipped()
    assert user_class.name not in make_settings(problems="all").problems
