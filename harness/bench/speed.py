"""Interleaved side-by-side timing against one plain forward solve:
``python -m deqbench.harness.bench.speed``.

The performance targets of `analytic` are ratios measured in one process, on one machine,
at one moment: its gradients against one plain fixed-point forward solve of the same layer
at the same tolerance (``deqbench.solvers.solve("fixed_point", ...)``), and against every
other strategy that answers the same query. On shared machines absolute times drift by 2x
within minutes, so every repetition runs each cell once, in turn (interleaved), and the
table reports medians and their ratios, never one cell's time against another run's.

Each width gets a fresh ``tanh`` instance (batch 128, n = 4, rho = 0.8, float64); JAX
strategies compile before timing (compilation excluded, as in ``deqbench run``). Peak
memory is each cell's resident set over the process's level just before it (VmHWM, after
warm-up, malloc thresholds pinned: :mod:`deqbench.harness.worker.memory`), and autograd's saved
bytes for torch cells, every width's before any time is taken. The times are taken with
malloc's thresholds where glibc's own adaptation leaves them
(:func:`~deqbench.harness.worker.memory.steady_malloc_thresholds`): pinned, every state-sized
block from m = 256 on is a fresh mmap, page faults included. Only queries a strategy
claims exact are timed (the targets compare with correct peers); each answer's relative
difference from `analytic`'s is printed. ``-s all`` takes every registered strategy, peers
included once they are merged; a named strategy that is not registered is skipped with a
note. With ``--threads 1`` the process keeps to one CPU, XLA's thread pool included
(``measure.use_threads``).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from deqbench.api import get_problem, get_strategy
from deqbench.harness.oracle.accuracy import relative_errors
from deqbench.harness.worker.measure import use_threads
from deqbench.harness.worker.memory import (
    PeakRSS,
    pin_malloc_thresholds,
    saved_tensor_bytes,
    steady_malloc_thresholds,
)
from deqbench.solvers import solve
from deqbench.strategies.base import STRATEGIES

FORWARD = "forward solve"
REFERENCE = "analytic"


@dataclass
class Cell:
    strategy: str
    query: str
    run: Callable[[], object]
    times: list[float]
    peak_bytes: float = float("nan")
    saved_bytes: float = float("nan")
    difference: float = float("nan")  # relative difference from `analytic`'s answer


def plain_forward(problem, tol: float) -> Callable[[], object]:
    """One plain fixed-point forward solve of the layer: the unit of every ratio."""
    theta, x = problem.theta, problem.x

    def run():
        with torch.no_grad():
            return solve(
                "fixed_point",
                lambda z: problem.f(theta, x, z),
                problem.z_init(),
                tol=tol,
                max_iter=500,
                phase="forward",
            )

    return run


def build_cells(problem, strategies, queries, tol) -> list[Cell]:
    cells = [Cell("", FORWARD, plain_forward(problem, tol), [])]
    for name in strategies:
        strategy = get_strategy(name, f_tol=tol, b_tol=tol)
        for query in queries:
            if query in strategy.exact_queries and strategy.unsupported_reason(query, problem) is None:
                run = lambda strategy=strategy, query=query: strategy.run(query, problem)  # noqa: E731
                cells.append(Cell(name, query, run, []))
    return cells


def measure_memory(cell: Cell) -> None:
    with PeakRSS() as meter:
        cell.run()
    cell.peak_bytes = meter.peak_bytes
    if cell.strategy and STRATEGIES.get(cell.strategy).backend == "torch":
        with saved_tensor_bytes() as saved:
            cell.run()
        cell.saved_bytes = saved.peak_bytes


def compare_answers(cells: list[Cell]) -> None:
    answers = {(c.strategy, c.query): c.run().values for c in cells if c.strategy}
    for cell in cells:
        reference = answers.get((REFERENCE, cell.query))
        if cell.strategy and reference is not None:
            cell.difference = max(relative_errors(answers[cell.strategy, cell.query], reference).values())


def time_interleaved(cells: list[Cell], repeats: int, synchronize: Callable[[], None] = lambda: None) -> None:
    """Every cell once per repetition, in an order shuffled anew each time (seeded);
    ``synchronize`` waits for queued device work (``torch.cuda.synchronize`` on a GPU)
    before the clock is read on either side.

    Not one fixed order: a cell that follows another framework's (the first JAX cell after
    the torch ones) ran 15 to 20% slower than the same cell placed elsewhere (tanh m = 256,
    jax-analytic against jax-implicit with the same solvers, whose compiled programs are
    identical), which a fixed order charged to the same cell every time.
    """
    order = random.Random(0)
    for _ in range(repeats):
        for cell in order.sample(cells, len(cells)):
            synchronize()
            start = time.perf_counter()
            cell.run()
            synchronize()
            cell.times.append(time.perf_counter() - start)


def warmed_up_cells(problem, strategies, queries, tol: float) -> list[Cell]:
    """The cells of one problem, each run once (torch's lazy set-up, JAX's compilation, a
    device's kernels) and their answers compared with `analytic`'s."""
    cells = build_cells(problem, strategies, queries, tol)
    for cell in cells:
        cell.run()
    compare_answers(cells)
    return cells


def prepare_width(m: int, strategies, queries, tol: float) -> list[Cell]:
    """One width's cells, warmed up, their answers compared and their memory measured."""
    cells = warmed_up_cells(get_problem("tanh", "large", m=m), strategies, queries, tol)
    for cell in cells:
        measure_memory(cell)
    return cells


def measure_widths(sizes: list[int], strategies, queries, tol: float, repeats: int) -> list[dict]:
    """Memory first, every width with malloc's thresholds pinned (the resident set follows
    what is live); then the times, with the thresholds glibc's adaptation would reach."""
    pin_malloc_thresholds()
    prepared = {m: prepare_width(m, strategies, queries, tol) for m in sizes}
    steady_malloc_thresholds()
    rows = []
    for m, cells in prepared.items():
        time_interleaved(cells, repeats)
        rows += table_rows(m, cells)
    return rows


def table_rows(m: int, cells: list[Cell]) -> list[dict]:
    medians = {(c.strategy, c.query): statistics.median(c.times) for c in cells}
    forward = medians["", FORWARD]
    rows = []
    for cell in cells:
        median = medians[cell.strategy, cell.query]
        reference = medians.get((REFERENCE, cell.query), float("nan"))
        rows.append(
            {
                "m": m,
                "query": cell.query,
                "strategy": cell.strategy or "-",
                "backend": STRATEGIES.get(cell.strategy).backend if cell.strategy else "torch",
                "median_ms": 1e3 * median,
                "x_forward": median / forward,
                "analytic_over_this": reference / median,
                "peak_MB": cell.peak_bytes / 1e6,
                "saved_MB": cell.saved_bytes / 1e6,
                "diff_vs_analytic": cell.difference,
            }
        )
    return rows


#: (header, row key, format) of each column printed; the GPU table picks its own
COLUMNS = (
    ("m", "m", "{}"),
    ("query", "query", "{}"),
    ("strategy", "strategy", "{}"),
    ("median ms", "median_ms", "{:.2f}"),
    ("x forward", "x_forward", "{:.2f}"),
    ("analytic/this", "analytic_over_this", "{:.2f}"),
    ("peak MB", "peak_MB", "{:.1f}"),
    ("saved MB", "saved_MB", "{:.1f}"),
    ("vs analytic", "diff_vs_analytic", "{:.1e}"),
)


def print_table(rows: list[dict], columns=COLUMNS) -> None:
    """A markdown table of the rows."""
    print("| " + " | ".join(header for header, _, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(style.format(row[key]) for _, key, style in columns) + " |")


def registered(names: list[str]) -> list[str]:
    """The names this tree registers ("all": every one), noting the others."""
    known = STRATEGIES.names()
    if names == ["all"]:
        return list(known)
    for name in names:
        if name not in known:
            print(f"(skipping {name!r}: not registered in this tree)")
    return [name for name in names if name in known]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-s", "--strategies", default="all", help="names, comma-separated, or all")
    parser.add_argument("-q", "--queries", default="grad,pinn_grad")
    parser.add_argument("--sizes", default="64,256,1024", help="state widths m, comma-separated")
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    use_threads(args.threads)  # before JAX is first imported: its CPU code on one CPU too
    strategies = registered([s for s in args.strategies.split(",") if s])
    sizes = [int(size) for size in args.sizes.split(",")]
    rows = measure_widths(sizes, strategies, args.queries.split(","), args.tol, args.repeats)
    print_table(rows)
    return rows


if __name__ == "__main__":
    main()
