"""Polarization: mixed partials from pure directional derivatives, against nested autograd."""

from fractions import Fraction

import pytest
import torch
from torch.func import jvp

from deqbench.partials import PolarizationPlan, parse_multi_index, polarization_terms

DIRECTIONS = ("t", "x", "y")


def smooth_map(p: torch.Tensor) -> torch.Tensor:
    """A curved map R^3 -> R^2 with non-zero mixed derivatives of every order up to 3."""
    t, x, y = p
    return torch.stack([torch.sin(t * x) * torch.exp(y) + x**3 * t, torch.tanh(t + 2 * x - y) * x * y])


def nested_partial(p0: torch.Tensor, index, basis) -> torch.Tensor:
    """d/ds_1 .. d/ds_k of smooth_map(p0 + sum s_i e_{index_i}): nested forward mode."""

    def derivative(function, e):
        return lambda p: jvp(function, (p,), (e,))[1]

    function = smooth_map
    for name in index:
        function = derivative(function, basis[name])
    return function(p0)


def pure_chain(p0: torch.Tensor, w: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[D^1 .. D^order] of smooth_map along w at p0."""
    chain, function = [], lambda tau: smooth_map(p0 + tau * w)
    for _ in range(order):
        function = (lambda g: lambda tau: jvp(g, (tau,), (torch.ones(()),))[1])(function)
        chain.append(function(torch.zeros(())))
    return chain


def test_second_order_mixed_partial_is_the_textbook_formula():
    terms = polarization_terms(("x", "y"))
    assert terms == {
        (("x", Fraction(1)), ("y", Fraction(1))): Fraction(1, 4),
        (("x", Fraction(1)), ("y", Fraction(-1))): Fraction(-1, 4),
    }


def test_pure_partials_need_only_their_own_direction():
    assert polarization_terms(("x", "x", "x")) == {(("x", Fraction(1)),): Fraction(1)}
    plan = PolarizationPlan.of({"u_t": "t", "u_xx": "xx"}, DIRECTIONS)
    assert plan.lines == ((("t", Fraction(1)),), (("x", Fraction(1)),)) and plan.order == 2


@pytest.mark.parametrize(
    "partials",
    [
        {"u_t": "t", "u_xx": "xx"},
        {"u_xy": "xy", "u_xx": "xx", "u_yy": "yy"},
        {"u_txx": "txx", "u_x": "x"},
        {"u_txy": ("t", "x", "y"), "u_ttt": "ttt", "u_xyy": "xyy"},
    ],
    ids=lambda p: ",".join(p),
)
def test_polarized_partials_match_nested_autograd(partials):
    torch.manual_seed(0)
    p0 = torch.randn(3, dtype=torch.float64)
    basis = dict(zip(DIRECTIONS, torch.eye(3, dtype=torch.float64), strict=True))
    plan = PolarizationPlan.of(partials, DIRECTIONS)
    chains = [pure_chain(p0, w, plan.order) for w in plan.direction_vectors(basis)]
    combined = plan.combine(chains)
    for name, spec in partials.items():
        expected = nested_partial(p0, tuple(spec), basis)
        assert torch.allclose(combined[name], expected, rtol=1e-12, atol=1e-12), name


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "order 1 to 3"), ("txxy", "order 1 to 3"), ("tz", "directions \\['z'\\]")],
)
def test_bad_partials_are_refused_with_what_is_accepted(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_multi_index(spec, DIRECTIONS)
