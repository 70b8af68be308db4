"""Mixed partial derivatives from pure directional ones, by polarization (docs/explanations/mathematics.md).

A PDE residual asks for partials such as u_t, u_xx or u_txx: named multi-indices over a
problem's input directions. The Taylor map of the `analytic` strategies gives *pure*
directional derivatives D^k_w u = d^k/dtau^k u(x + tau w) along any w, one chain of k linear
solves per w. A mixed partial is a symmetric k-linear form evaluated at its directions, and a
symmetric k-linear form is determined by its values on the diagonal (polarization):

    T(w_1, .., w_k) = 1 / (2^k k!)  sum over signs s in {-1, 1}^k of  s_1..s_k  D^k(s_1 w_1 + .. + s_k w_k).

For k = 2 this is D_a D_b = (D^2_{a+b} - D^2_{a-b}) / 4. Many sign patterns give the same
direction up to a factor (D^k(c w) = c^k D^k(w)), so :class:`PolarizationPlan` keeps one
canonical direction per line (first non-zero coefficient +1) and folds the factors into the
weights: u_txx needs the three directions 2x + t, 2x - t and t; u_xx needs only x.

Everything here is exact rational arithmetic on the coefficients; arrays enter only in
:meth:`PolarizationPlan.direction_vectors` and :meth:`PolarizationPlan.combine`, which work
with torch tensors and JAX arrays alike.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

#: The highest order of a partial a problem may declare.
MAX_PARTIAL_ORDER = 3

MultiIndex = tuple[str, ...]
#: A direction as integer-or-rational coefficients over named input directions.
Line = tuple[tuple[str, Fraction], ...]


def parse_multi_index(spec: str | Sequence[str], known: Sequence[str]) -> MultiIndex:
    """A multi-index from ``"txx"`` (one letter a direction) or ``("t", "x", "x")``, checked.

    ValueError, naming what is wrong and what is accepted, for an empty or too long index or
    a direction the problem does not have.
    """
    index = tuple(spec)
    if not 1 <= len(index) <= MAX_PARTIAL_ORDER:
        raise ValueError(
            f"a partial derivative has order 1 to {MAX_PARTIAL_ORDER}; got {spec!r} (order {len(index)})"
        )
    unknown = sorted(set(index) - set(known))
    if unknown:
        raise ValueError(
            f"partial {spec!r} names directions {unknown} the problem does not have; "
            f"known: {', '.join(known)}"
        )
    return tuple(sorted(index))


def polarization_terms(index: MultiIndex) -> dict[Line, Fraction]:
    """{canonical direction: weight} with D_index = sum weight * D^k(direction), k = len(index)."""
    k = len(index)
    scale = Fraction(1, 2**k * math.factorial(k))
    terms: dict[Line, Fraction] = {}
    for signs in itertools.product((1, -1), repeat=k):
        coefficients: dict[str, Fraction] = {}
        for sign, name in zip(signs, index, strict=True):
            coefficients[name] = coefficients.get(name, Fraction(0)) + sign
        line, factor = canonical_line(coefficients)
        if line is None:  # the zero direction: every derivative along it vanishes
            continue
        weight = scale * math.prod(signs) * factor**k
        terms[line] = terms.get(line, Fraction(0)) + weight
    return {line: weight for line, weight in terms.items() if weight != 0}


def canonical_line(coefficients: Mapping[str, Fraction]) -> tuple[Line | None, Fraction]:
    """(line, c) with coefficients = c * line, line's first non-zero coefficient 1 (sorted by
    name); (None, 0) for the zero vector."""
    nonzero = [(name, value) for name, value in sorted(coefficients.items()) if value != 0]
    if not nonzero:
        return None, Fraction(0)
    first = Fraction(nonzero[0][1])
    return tuple((name, Fraction(value) / first) for name, value in nonzero), first


@dataclass(frozen=True)
class Term:
    line: int  # index into PolarizationPlan.lines
    order: int  # which derivative along it (1 .. plan.order)
    weight: Fraction


@dataclass(frozen=True)
class PolarizationPlan:
    """The directions and the weights that give a set of named partials from pure derivatives.

    ``lines``: the distinct canonical directions; ``order``: the highest order needed, so each
    line gets a chain D^1 .. D^order; ``terms[name]``: how partial ``name`` combines them.
    """

    lines: tuple[Line, ...]
    order: int
    terms: Mapping[str, tuple[Term, ...]]

    @classmethod
    def of(cls, partials: Mapping[str, str | Sequence[str]], known: Sequence[str]) -> PolarizationPlan:
        indices = {name: parse_multi_index(spec, known) for name, spec in partials.items()}
        if not indices:
            raise ValueError("a polarization plan needs at least one partial")
        lines: list[Line] = []
        terms: dict[str, tuple[Term, ...]] = {}
        for name, index in indices.items():
            named_terms = []
            for line, weight in polarization_terms(index).items():
                if line not in lines:
                    lines.append(line)
                named_terms.append(Term(lines.index(line), len(index), weight))
            terms[name] = tuple(named_terms)
        return cls(tuple(lines), max(map(len, indices.values())), terms)

    @property
    def line_orders(self) -> tuple[int, ...]:
        """The highest derivative each line's terms read: a chain along that line needs no
        more (heat's u_t + u_xx: order 1 along t, 2 along x, where ``order`` is 2 for both)."""
        orders = [0] * len(self.lines)
        for terms in self.terms.values():
            for term in terms:
                orders[term.line] = max(orders[term.line], term.order)
        return tuple(orders)

    def direction_vectors(self, directions: Mapping[str, object]) -> list:
        """Each line as an input-space vector built from the problem's named directions."""
        return [sum(float(c) * directions[name] for name, c in line) for line in self.lines]

    def combine(self, chains: Sequence[Sequence[object]]) -> dict[str, object]:
        """The named partials from ``chains[line][j - 1]`` = D^j along that line (j = 1..order)."""
        return {
            name: sum(float(term.weight) * chains[term.line][term.order - 1] for term in terms)
            for name, terms in self.terms.items()
        }
