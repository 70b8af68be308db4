"""``deqbench list``: the strategies, problems and queries that can be run here."""

from __future__ import annotations

import click
from rich.table import Table

from deqbench.harness.cli.common import stdout_console
from deqbench.harness.results import rows as results


def physics_partials_text(problem) -> str:
    """The named partials each physics query's loss uses, one line a query ("" for none)."""
    lines = []
    for query in ("pinn_grad", "pinn2_grad"):
        loss, partials = problem.physics_query(query)
        if loss is not None:
            lines.append(f"{query}: " + ", ".join("".join(index) for index in partials.values()))
    return "\n".join(lines)


@click.command("list")
def list_command() -> None:
    """Strategies (backend, queries), problems (sizes, directions, queries) and queries."""
    from deqbench.backends import jax_unavailable_reason
    from deqbench.harness.run.matrix import problem_names, strategy_names
    from deqbench.problems.base import PROBLEMS, supported_queries
    from deqbench.queries import QUERIES
    from deqbench.strategies.base import STRATEGIES

    console = stdout_console()
    strategies = Table(title="strategies", title_justify="left")
    for column in ("name", "backend", "library", "supports", "claims exact", "description"):
        strategies.add_column(column)
    for name in strategy_names():
        cls = STRATEGIES.get(name)
        supported = [q for q in QUERIES if q in cls.supported_queries]
        exact = [q for q in QUERIES if q in cls.exact_queries]
        exact_text = "all supported" if exact == supported else ", ".join(exact) or "none"
        backend = cls.backend
        if backend == "jax" and jax_unavailable_reason() is not None:
            backend += f" (unavailable: {jax_unavailable_reason()})"
        strategies.add_row(
            name, backend, library_text(cls), ", ".join(supported), exact_text, cls.description
        )
    console.print(strategies)

    problems = Table(title="problems", title_justify="left")
    for column in ("name", "sizes", "backends", "directions", "queries (quick)", "partials", "description"):
        problems.add_column(column)
    for name in problem_names():
        cls = PROBLEMS.get(name)
        sizes = "\n".join(f"{preset}: {results.format_size(knobs)}" for preset, knobs in cls.presets.items())
        instance = cls("quick" if "quick" in cls.presets else next(iter(cls.presets)))
        directions = ", ".join(instance.directions)
        backends = ", ".join(cls.backends)
        queries_text = ", ".join(supported_queries(instance))
        partials = physics_partials_text(instance)
        problems.add_row(name, sizes, backends, directions, queries_text, partials, cls.description)
    console.print(problems)

    queries = Table(title="queries", title_justify="left")
    for column in ("name", "order", "description"):
        queries.add_column(column)
    for query in QUERIES.values():
        queries.add_row(query.name, str(query.order), query.description)
    console.print(queries)


def library_text(cls) -> str:
    """deqbench for our own strategies; a peer's library and version, and why it is
    unavailable here if it is."""
    if cls.peer is None:
        return "deqbench"
    reason = cls.unavailable_reason()
    return cls.peer if reason is None else f"{cls.peer} (unavailable: {reason})"
