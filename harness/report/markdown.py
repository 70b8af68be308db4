"""A run's results as Markdown tables, for READMEs and issue notes.

``python -m deqbench.harness.report.markdown DIR``: one table a problem, strategy x query, each
cell the worst relative error against the oracle ("—" where the strategy or problem does
not support the query).

``python -m deqbench.harness.report.markdown --side-by-side DIR``: one row a (query, size,
strategy), in the run's strategy order: median time without compilation, compile time,
peak memory over the worker's baseline, worst relative error and status (what
``make bench-peers`` prints for the README's comparison).
"""

from __future__ import annotations

import sys

import pandas as pd

from deqbench.harness.report.units import format_error, format_memory, format_seconds
from deqbench.harness.report.writer import Table, code, markdown_escape
from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.run_folder import RunFolder
from deqbench.queries import QUERIES


def error_tables(rows: pd.DataFrame) -> str:
    worst = rows[(rows.metric == M.RELATIVE_ERROR) & (rows.output.fillna("") == "")]
    strategies = sorted(rows.strategy.unique())
    parts = []
    for problem, frame in rows.groupby("problem", sort=False):
        errors = worst[worst.problem == problem].pivot_table(
            index="strategy", columns="query", values="value"
        )
        queries = [q for q in QUERIES if q in set(frame["query"])]
        errors = errors.reindex(index=strategies, columns=queries)
        body = [
            [code(strategy), *(format_error(value) for value in row)] for strategy, row in errors.iterrows()
        ]
        title = markdown_escape(f"{problem} ({frame['size'].iloc[0]})")
        table = Table(["strategy", *queries], body).markdown
        parts.append(f"**{title}**: worst relative error against the oracle\n\n{table}")
    return "\n\n".join(parts)


SIDE_BY_SIDE_COLUMNS = {
    M.TIME_MEDIAN: "median time (no compile)",
    M.COMPILE_TIME: "compile",
    M.PEAK_RSS_BYTES: "peak memory over baseline",
    M.RELATIVE_ERROR: "worst relative error",
}


def side_by_side_table(rows: pd.DataFrame) -> str:
    """One line a (query, size, strategy); a cell without a value (stopped, unsupported,
    not compiled) shows "—" and its status says why."""
    whole = rows[rows.output.fillna("") == ""]
    values = whole.pivot_table(index=["query", "size", "strategy"], columns="metric", values="value")
    status = rows.groupby(["query", "size", "strategy"])["status"].first()
    header = ["query", "m", "strategy", *SIDE_BY_SIDE_COLUMNS.values(), "status"]
    body = []
    for query, size, strategy in in_run_order(rows, status.index):
        metric = values.loc[(query, size, strategy)] if (query, size, strategy) in values.index else {}
        cells = [format_metric(name, metric.get(name)) for name in SIDE_BY_SIDE_COLUMNS]
        knobs = dict(knob.split("=") for knob in size.split(","))
        body.append([query, knobs.get("m", size), code(strategy), *cells, status[(query, size, strategy)]])
    return Table(header, body).markdown


def in_run_order(rows: pd.DataFrame, keys) -> list[tuple[str, str, str]]:
    """Queries as QUERIES lists them, sizes and strategies in the order the run met them."""
    sizes, strategies = list(dict.fromkeys(rows["size"])), list(dict.fromkeys(rows.strategy))
    queries = [q for q in QUERIES if q in set(rows["query"])]
    return sorted(keys, key=lambda k: (queries.index(k[0]), sizes.index(k[1]), strategies.index(k[2])))


def format_metric(name: str, value: float | None) -> str:
    if value is None or pd.isna(value):
        return "—"
    if name == M.PEAK_RSS_BYTES:
        return format_memory(value, name)
    if name == M.RELATIVE_ERROR:
        return format_error(value)
    return format_seconds(value)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    side_by_side = args[:1] == ["--side-by-side"]
    args = args[1:] if side_by_side else args
    if len(args) != 1:
        raise SystemExit("usage: python -m deqbench.harness.report.markdown [--side-by-side] RUN_DIR")
    rows = RunFolder(args[0]).read()
    print(side_by_side_table(rows) if side_by_side else error_tables(rows))


if __name__ == "__main__":
    main()
