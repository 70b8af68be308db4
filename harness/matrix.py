"""The strategy x problem x query matrix: the one source of truth for tests, asv and the CLI.

Every combination is a cell, supported or not; an unsupported cell carries the reason (the
strategy lacks the query, or the problem cannot pose it) and is recorded as "unsupported"
instead of raising deep inside a run. Cell ids are stable: ``strategy/problem/query``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from deqbench.problems.base import PROBLEMS, Problem
from deqbench.queries import QUERIES
from deqbench.strategies.base import STRATEGIES


@dataclass(frozen=True)
class Cell:
    strategy: str
    problem: str
    query: str
    unsupported: str | None = None  # why the cell cannot run; None if it can

    @property
    def id(self) -> str:
        return f"{self.strategy}/{self.problem}/{self.query}"

    @property
    def supported(self) -> bool:
        return self.unsupported is None

    @property
    def expected_exact(self) -> bool:
        """Whether the strategy claims this answer is exact (a wrong one is a failure)."""
        return self.query in STRATEGIES.get(self.strategy).exact_queries


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def problem_names() -> list[str]:
    return PROBLEMS.names()


def query_names() -> list[str]:
    return list(QUERIES)


@cache
def _probe(problem: str, preset: str) -> Problem:
    return PROBLEMS.get(problem)(preset)


def cell(strategy: str, problem: str | Problem, query: str, preset: str = "quick") -> Cell:
    instance = _probe(problem, preset) if isinstance(problem, str) else problem
    reason = STRATEGIES.get(strategy)().unsupported_reason(query, instance)
    return Cell(strategy, instance.name, query, reason)


def build_matrix(
    strategies: Iterable[str] | None = None,
    problems: Iterable[str] | None = None,
    queries: Iterable[str] | None = None,
    preset: str = "quick",
) -> list[Cell]:
    """All cells, in a stable order (strategy, problem, query); None means all."""
    strategies = list(strategies) if strategies is not None else strategy_names()
    problems = list(problems) if problems is not None else problem_names()
    queries = list(queries) if queries is not None else query_names()
    return [cell(s, p, q, preset) for s in strategies for p in problems for q in queries]
