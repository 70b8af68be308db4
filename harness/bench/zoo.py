"""The speed table over the PINN zoo: ``python -m deqbench.harness.bench.zoo`` (``make perf-zoo``).

Every strategy that claims a query exact (torch, JAX and the installed peers), on every PINN
family at the chosen presets, for grad, pinn_grad and pinn2_grad, timed as
:mod:`deqbench.harness.bench.speed` times its cells: one problem instance at a time, every
cell warmed up (JAX compiled) and its answer compared with `analytic`'s, then every cell once
per repetition, in a shuffled order, in one process (one thread on one CPU by default),
on the process's CPU time by default (``--clock wall`` for wall time: see
:func:`~deqbench.harness.bench.speed.time_interleaved`). Times drift with the machine's
load; the ratios inside one problem much less, so each row
carries its time over one plain forward solve of the same layer (``x forward``) and over the
fastest exact strategy of the same query (``x best``).

One column does not depend on load at all: ``work``, the solver steps a query took,
counted in forward-solve equivalents: each solve's iterations times its batch rows, summed,
over the plain forward solve's iterations times the problem's batch (a linear step costs
about one forward step: one matmul with W). It is reported where every solve of a cell
records its rows (the torch solvers of :mod:`deqbench.solvers`). It counts solves only:
what autograd does through recorded steps (`unrolled`, `iterative-backward`'s backward) is
not in it, so it compares `analytic` with its own floor, not with those strategies.

The summary table, one row per problem and query, says which torch and which JAX strategy
was fastest, `analytic` over the forward solve and over `jax-analytic`: the issue's targets.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from deqbench.api import get_problem
from deqbench.harness.bench.speed import FORWARD, REFERENCE, registered, time_interleaved, warmed_up_cells
from deqbench.harness.worker.measure import use_threads
from deqbench.strategies.base import STRATEGIES

FAMILIES = ("vanderpol", "fourtanks", "heat1d", "wave1d", "poisson2d", "burgers1d", "mongeampere2d", "inr")
QUERIES = ("grad", "pinn_grad", "pinn2_grad")
#: Exact only where nothing else is: the seed's formula is wrong on every curved problem.
LEFT_OUT = ("analytic-seed",)


def forward_work(cells) -> float:
    """Row-steps of one plain forward solve: its iterations times the batch."""
    forward = next(cell for cell in cells if cell.query == FORWARD)
    solution = forward.run()
    return solution.stats.iterations * solution.z.shape[0]


def cell_work(cell, unit: float) -> float:
    """The cell's solver row-steps over ``unit``; NaN where a solve did not record its rows."""
    solves = cell.run().solves
    if not solves or any(getattr(s, "rows", 0) <= 0 for s in solves):
        return float("nan")
    return sum(s.iterations * s.rows for s in solves) / unit


CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def measure_problem(family, preset, strategies, queries, tol: float, repeats: int, clock="cpu") -> list[dict]:
    """One problem instance's rows: every exact cell, timed interleaved with the forward."""
    problem = get_problem(family, preset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a peer's deprecation notes; convergence is in `work`
        cells = warmed_up_cells(problem, strategies, queries, tol)
        unit = forward_work(cells)
        work = {(c.strategy, c.query): cell_work(c, unit) for c in cells if c.strategy}
        time_interleaved(cells, repeats, clock=CLOCKS[clock])
    medians = {(c.strategy, c.query): statistics.median(c.times) for c in cells}
    forward = medians["", FORWARD]
    rows = []
    for cell in cells:
        if not cell.strategy:
            continue
        best = min(t for (s, q), t in medians.items() if s and q == cell.query)
        median = medians[cell.strategy, cell.query]
        rows.append(
            {
                "problem": family,
                "preset": preset,
                "m": problem.m,
                "batch": problem.batch,
                "query": cell.query,
                "strategy": cell.strategy,
                "backend": STRATEGIES.get(cell.strategy).backend,
                "median_ms": 1e3 * median,
                "x_forward": median / forward,
                "x_best": median / best,
                "work": work[cell.strategy, cell.query],
                "diff_vs_analytic": cell.difference,
            }
        )
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per problem, preset and query: the fastest torch and JAX strategies and the targets'
    ratios (`analytic` over a forward solve, over `jax-analytic`)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["problem"], row["preset"], row["query"]), []).append(row)
    out = []
    for (problem, preset, query), group in groups.items():
        by_name = {row["strategy"]: row for row in group}
        fastest = {backend: fastest_of(group, backend) for backend in ("torch", "jax")}
        analytic, jax_analytic = by_name.get(REFERENCE), by_name.get("jax-analytic")
        out.append(
            {
                "problem": problem,
                "preset": preset,
                "query": query,
                "fastest_torch": fastest["torch"]["strategy"] if fastest["torch"] else "-",
                "fastest_jax": fastest["jax"]["strategy"] if fastest["jax"] else "-",
                "analytic_x_forward": analytic["x_forward"] if analytic else float("nan"),
                "analytic_work": analytic["work"] if analytic else float("nan"),
                "analytic_over_jax_analytic": ratio(analytic, jax_analytic),
            }
        )
    return out


def fastest_of(group: list[dict], backend: str) -> dict | None:
    return min((r for r in group if r["backend"] == backend), key=lambda r: r["median_ms"], default=None)


def ratio(row: dict | None, other: dict | None) -> float:
    return row["median_ms"] / other["median_ms"] if row and other else float("nan")


COLUMNS = (
    ("problem", "problem", "{}"),
    ("preset", "preset", "{}"),
    ("m x batch", None, "{m}x{batch}"),
    ("query", "query", "{}"),
    ("strategy", "strategy", "{}"),
    ("median ms", "median_ms", "{:.2f}"),
    ("x forward", "x_forward", "{:.2f}"),
    ("x best", "x_best", "{:.2f}"),
    ("work (fwd solves)", "work", "{:.2f}"),
    ("vs analytic", "diff_vs_analytic", "{:.1e}"),
)
SUMMARY_COLUMNS = (
    ("problem", "problem", "{}"),
    ("preset", "preset", "{}"),
    ("query", "query", "{}"),
    ("fastest torch", "fastest_torch", "{}"),
    ("fastest JAX", "fastest_jax", "{}"),
    ("analytic x forward", "analytic_x_forward", "{:.2f}"),
    ("analytic work", "analytic_work", "{:.2f}"),
    ("analytic / jax-analytic", "analytic_over_jax_analytic", "{:.2f}"),
)


def markdown(rows: list[dict], columns) -> str:
    """A markdown table of the rows (a key of None formats the whole row)."""
    lines = ["| " + " | ".join(header for header, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [style.format(**row) if key is None else style.format(row[key]) for _, key, style in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--problems", default=",".join(FAMILIES), help="families, comma-separated")
    parser.add_argument("--presets", default="default,large")
    parser.add_argument("-s", "--strategies", default="all", help="names, comma-separated, or all")
    parser.add_argument("-q", "--queries", default=",".join(QUERIES))
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--clock", choices=tuple(CLOCKS), default="cpu", help="process CPU time (default) or wall time"
    )
    args = parser.parse_args(argv)
    use_threads(args.threads)  # before JAX is first imported: its CPU code on one CPU too
    names = [s for s in args.strategies.split(",") if s]
    strategies = [name for name in registered(names) if names != ["all"] or name not in LEFT_OUT]
    queries = args.queries.split(",")
    rows = []
    for preset in args.presets.split(","):
        for family in args.problems.split(","):
            problem_rows = measure_problem(
                family, preset, strategies, queries, args.tol, args.repeats, args.clock
            )
            print(markdown(problem_rows, COLUMNS), flush=True)
            rows += problem_rows
    print()
    print(markdown(summary(rows), SUMMARY_COLUMNS))
    return rows


if __name__ == "__main__":
    main()
