"""The contracts of Strategy and Problem are checked when a class is defined.

A subclass that sets ``name`` but breaks its base class's contract (see the docstrings of
``Strategy`` and ``Problem``) is a TypeError at once, naming the class and what is wrong,
rather than an AttributeError or NotImplementedError in the middle of a run.
"""

import re

import pytest
import torch

from deqbench.problems.base import PROBLEMS, Problem
from deqbench.problems.tanh import TanhDEQ
from deqbench.queries import QUERIES
from deqbench.strategies._autograd import AutogradStrategy
from deqbench.strategies.base import STRATEGIES, Strategy


@pytest.fixture
def registries(monkeypatch):
    """Classes the tests define are registered for that test only."""
    for registry in (STRATEGIES, PROBLEMS):
        registry.discover()
        monkeypatch.setattr(registry, "_classes", dict(registry._classes))


# ------------------------------------------------------------------ strategies
def test_a_supported_query_without_a_method_is_refused(registries):
    with pytest.raises(TypeError, match=r"HalfDone supports queries .* define jvp\(self, problem\), hessian"):

        class HalfDone(Strategy):  # noqa: F841 - defining it is the test
            name = "contract-half-done"
            supported_queries = frozenset({"forward", "jvp", "hessian"})

            def forward(self, problem):
                return {}

    assert "contract-half-done" not in STRATEGIES


def test_an_attribute_named_as_a_query_is_not_a_method(registries):
    with pytest.raises(TypeError, match=r"define forward\(self, problem\)"):

        class NotCallable(Strategy):  # noqa: F841
            name = "contract-not-callable"
            supported_queries = frozenset({"forward"})
            forward = None


def test_exact_queries_must_be_supported(registries):
    with pytest.raises(
        TypeError, match=r"Boastful claims exact_queries \['jvp'\] .* not in its supported_queries"
    ):

        class Boastful(Strategy):  # noqa: F841
            name = "contract-boastful"
            supported_queries = frozenset({"forward"})
            exact_queries = frozenset({"forward", "jvp"})

            def forward(self, problem):
                return {}


def test_inherited_query_methods_count(registries):
    class Helper(Strategy):  # no name: an abstract helper, not checked
        supported_queries = frozenset({"forward"})

        def forward(self, problem):
            return {"z_star": problem.z_init()}

    class FromHelper(Helper):
        name = "contract-from-helper"
        exact_queries = frozenset({"forward"})

    class FromAutograd(AutogradStrategy):
        name = "contract-from-autograd"

        def z_star(self, problem, theta, x):
            return self.solve_forward(lambda z: problem.f(theta, x, z), problem.z_init())

    assert STRATEGIES.get("contract-from-helper") is FromHelper
    assert STRATEGIES.get("contract-from-autograd") is FromAutograd


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.name)
def test_every_shipped_strategy_keeps_its_contract(cls):
    assert cls.exact_queries <= cls.supported_queries <= set(QUERIES)
    for query in cls.supported_queries:
        assert callable(getattr(cls, query)), query


def test_the_strategy_docstring_lists_the_contract():
    names = ["name", "supported_queries", "exact_queries", "backend", "description"]
    names += ["default_f_solver", "default_b_solver", "unsupported_reason", "solve_forward", "solve_backward"]
    assert [name for name in names if not re.search(rf"\b{name}\b", Strategy.__doc__)] == []
    assert "Required" in Strategy.__doc__ and "Optional" in Strategy.__doc__


# -------------------------------------------------------------------- problems
def tanh_layer(theta, x, z):
    return torch.tanh(0.5 * z + x.sum(dim=1, keepdim=True) * theta["b"])


def build_small(problem, generator, m, n, batch):
    problem.theta = {"b": problem.randn(generator, m)}
    problem.x = problem.randn(generator, batch, n)
    problem.directions = {"t": torch.eye(n, dtype=problem.dtype)[0]}


SIZES = {"quick": {"m": 2, "n": 2, "batch": 2}, "default": {"m": 4, "n": 2, "batch": 3}}


def test_a_problem_without_f_is_refused(registries):
    with pytest.raises(TypeError, match=r"^NoLayer must define f\(self, theta, x, z\)$"):

        class NoLayer(Problem):  # noqa: F841
            name = "contract-no-layer"
            presets = SIZES

            def build(self, generator, *, m, n, batch):
                build_small(self, generator, m, n, batch)

    assert "contract-no-layer" not in PROBLEMS


def test_a_problem_without_build_or_f_is_refused_naming_both(registries):
    with pytest.raises(TypeError, match=r"^Bare must define build\(self, generator, \*\*knobs\) and f\("):

        class Bare(Problem):  # noqa: F841
            name = "contract-bare"
            presets = SIZES


def test_presets_must_name_the_same_knobs(registries):
    pattern = (
        r"Uneven: every preset must name the same knobs, but 'quick' names m, n, batch; 'default' names m, n"
    )
    with pytest.raises(TypeError, match=pattern):

        class Uneven(Problem):  # noqa: F841
            name = "contract-uneven"
            presets = {"quick": {"m": 2, "n": 2, "batch": 2}, "default": {"m": 4, "n": 2}}

            def build(self, generator, **knobs):
                build_small(self, generator, knobs["m"], knobs["n"], knobs.get("batch", 2))

            def f(self, theta, x, z):
                return tanh_layer(theta, x, z)


def test_a_state_width_comes_from_an_m_knob_or_an_override(registries):
    with pytest.raises(TypeError, match=r"Widthless: its presets have no 'm' knob"):

        class Widthless(Problem):  # noqa: F841
            name = "contract-widthless"
            presets = {"quick": {"n": 2, "batch": 2}}

            def build(self, generator, *, n, batch):
                build_small(self, generator, 3, n, batch)

            def f(self, theta, x, z):
                return tanh_layer(theta, x, z)

    class FixedWidth(Problem):
        name = "contract-fixed-width"
        presets = {"quick": {"n": 2, "batch": 2}}
        m = 3

        def build(self, generator, *, n, batch):
            build_small(self, generator, self.m, n, batch)

        def f(self, theta, x, z):
            return tanh_layer(theta, x, z)

    assert FixedWidth("quick").z_init().shape == (2, 3)


def test_a_complete_problem_and_a_renamed_subclass_are_registered(registries):
    class Small(Problem):
        name = "contract-small"
        presets = SIZES

        def build(self, generator, *, m, n, batch):
            build_small(self, generator, m, n, batch)

        def f(self, theta, x, z):
            return tanh_layer(theta, x, z)

    class Renamed(TanhDEQ):  # build, f and presets inherited: they count
        name = "contract-renamed-tanh"

    assert PROBLEMS.get("contract-small") is Small and PROBLEMS.get("contract-renamed-tanh") is Renamed
    assert Small("quick").m == 2


@pytest.mark.parametrize("cls", list(PROBLEMS), ids=lambda cls: cls.name)
def test_every_shipped_problem_keeps_its_contract(cls):
    knobs = [set(size) for size in cls.presets.values()]
    assert all(k == knobs[0] for k in knobs) and "quick" in cls.presets
    assert cls.f is not Problem.f and cls.build is not Problem.build


def test_the_problem_docstring_lists_the_contract():
    names = ["name", "presets", "build", "f", "description", "data_loss", "output", "physics_loss"]
    names += ["physics2_loss", "physics_partials", "physics2_partials", "jvp_direction"]
    names += ["reference", "z_init", "hessian_max_n", "m"]
    assert [name for name in names if not re.search(rf"``{name}\b", Problem.__doc__)] == []
    assert "Required" in Problem.__doc__ and "Optional" in Problem.__doc__


class TwoDirections(Problem):  # unregistered (no name): a base for the partials checks
    presets = SIZES

    def build(self, generator, *, m, n, batch):
        build_small(self, generator, m, n, batch)
        self.directions["x"] = torch.eye(n, dtype=self.dtype)[1]

    def f(self, theta, x, z):
        return tanh_layer(theta, x, z)

    def physics_loss(self, theta, x, z, d):
        return sum(value.square().mean() for value in d.values())


@pytest.mark.parametrize(
    ("partials", "message"),
    [
        ({"u_q": "q"}, r"physics_partials: partial 'q' names directions \['q'\] .*known: t, x"),
        ({"u_tttx": "tttx"}, r"physics_partials: a partial derivative has order 1 to 3; got 'tttx'"),
        ({"u": ""}, r"order 1 to 3; got ''"),
    ],
)
def test_a_partial_the_problem_cannot_take_is_refused_at_build(partials, message):
    class BadPartials(TwoDirections):
        physics_partials = partials

    with pytest.raises(TypeError, match=message):
        BadPartials("quick")


def test_named_partials_are_sorted_multi_indices_and_pose_the_query():
    class Mixed(TwoDirections):
        physics_partials = {"u_xt": "xt", "u_txx": ("x", "t", "x")}

    problem = Mixed("quick")
    problem.name = "mixed"  # unregistered: named here for the messages
    assert problem.physics_query("pinn_grad")[1] == {"u_xt": ("t", "x"), "u_txx": ("t", "x", "x")}
    assert problem.unsupported_reason("pinn_grad") is None
    assert "physics2_loss" in problem.unsupported_reason("pinn2_grad")
    assert problem.partials_plan("pinn_grad").order == 3


def test_a_direction_name_is_one_character():
    class LongName(TwoDirections):
        def build(self, generator, *, m, n, batch):
            super().build(generator, m=m, n=n, batch=batch)
            self.directions["time"] = self.directions.pop("x")

    with pytest.raises(TypeError, match=r"direction name 'time' must be one character"):
        LongName("quick")
