"""The strategy x problem x query matrix: the one source of truth for tests, asv and the CLI,
and the plan of a run's cells (:func:`plan`).

Every combination is a cell, supported or not; an unsupported cell carries the reason (the
strategy lacks the query, or the problem cannot pose it) and is recorded as "unsupported"
instead of raising deep inside a run. Cell ids are stable: ``strategy/problem/query``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import product
from typing import Any

from deqbench.harness.references import resolve_class
from deqbench.harness.run.settings import RunSettings
from deqbench.harness.run.sizes import problem_overrides
from deqbench.harness.worker.cell import CellSpec
from deqbench.problems.base import PROBLEMS, Problem
from deqbench.queries import QUERIES
from deqbench.strategies.base import STRATEGIES


@dataclass(frozen=True)
class Cell:
    strategy: str
    problem: str
    query: str
    unsupported: str | None = None  # why the cell cannot run; None if it can
    variant: str = ""  # in a sweep, the swept knobs' values ("m=256"); empty otherwise

    @property
    def id(self) -> str:
        base = f"{self.strategy}/{self.problem}/{self.query}"
        return f"{base}@{self.variant}" if self.variant else base

    @property
    def supported(self) -> bool:
        return self.unsupported is None

    @property
    def expected_exact(self) -> bool:
        """Whether the strategy claims this answer is exact (a wrong one is a failure)."""
        return self.query in STRATEGIES.get(self.strategy).exact_queries


def strategy_names() -> list[str]:
    return STRATEGIES.names()


def own_strategy_names() -> list[str]:
    """deqbench's own strategies: the peers (another library's code, ``Strategy.peer``) left
    out, as the full verification matrix and the asv suite take them."""
    return [name for name in STRATEGIES.shipped() if STRATEGIES.get(name).peer is None]


def peer_names() -> list[str]:
    return [name for name in STRATEGIES.shipped() if STRATEGIES.get(name).peer is not None]


def problem_names() -> list[str]:
    return PROBLEMS.shipped()


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


# ------------------------------------------------------------------ a run's plan
@dataclass(frozen=True)
class PlannedCell:
    """A cell of a run, with the spec its worker builds it from and its resolved size."""

    cell: Cell
    spec: CellSpec
    size: dict[str, Any]


def strategy_cell(strategy: str, problem: str, query: str, variant: str = "") -> Cell:
    """A cell whose support is decided from the strategy alone, without building the
    problem in this process: a problem the query cannot pose is found out by the worker
    (a user's build() may hang or crash, and only a worker can be stopped)."""
    return Cell(strategy, problem, query, STRATEGIES.get(strategy).refusal(query), variant)


def sweep_points(problem_cls: type, settings: RunSettings) -> list[dict[str, str]]:
    """The problem's share of the sweep: each combination of the swept knobs it has (their
    product), in the order given; one empty point when it has none of them."""
    knobs = problem_cls.presets.get(settings.preset, {})
    axes = [(knob, values) for knob, values in settings.sweep_axes.items() if knob in knobs]
    return [dict(zip([k for k, _ in axes], combo, strict=True)) for combo in product(*(v for _, v in axes))]


def plan(settings: RunSettings) -> list[PlannedCell]:
    """The run's cells in the matrix's order (strategy, problem, size, query), each with its spec.

    Swept values that name one size (``m=8,08,+8``) give one cell, not three with one id.
    """
    cells: dict[str, PlannedCell] = {}
    for planned in iter_plan(settings):
        cells.setdefault(planned.cell.id, planned)
    return list(cells.values())


def iter_plan(settings: RunSettings) -> Iterator[PlannedCell]:
    """:func:`plan`'s cells one at a time, repeats included."""
    strategy_refs = {resolve_class(ref, "strategy").name: ref for ref in settings.strategies}
    problem_classes = {ref: resolve_class(ref, "problem") for ref in settings.problems}
    for strategy, strategy_ref in strategy_refs.items():
        for problem_ref, problem_cls in problem_classes.items():
            for point in sweep_points(problem_cls, settings):
                overrides = problem_overrides(problem_cls, settings.preset, {**settings.overrides, **point})
                size = problem_cls.resolve_size(settings.preset, overrides)
                variant = ",".join(f"{knob}={size[knob]}" for knob in point)
                for query in settings.queries:
                    spec = CellSpec(
                        strategy=strategy_ref,
                        problem=problem_ref,
                        query=query,
                        preset=settings.preset,
                        overrides=overrides,
                        device=settings.device,
                        dtype=settings.dtype,
                        seed=settings.seed,
                        solver_settings=settings.solver_settings(),
                        warmup=settings.warmup_runs,
                        repeats=settings.timed_repeats,
                        threads=settings.threads,
                    )
                    cell = strategy_cell(strategy, problem_cls.name, query, variant)
                    yield PlannedCell(cell, spec, size)


def quick_spec(strategy: str, problem: str, query: str) -> CellSpec:
    """The spec ``deqbench run --quick`` runs this cell with (the asv suite's entry point)."""
    from deqbench.harness.run.settings import make_settings

    settings = make_settings(strategies=[strategy], problems=[problem], queries=[query], quick=True)
    (planned,) = plan(settings)
    return planned.spec
