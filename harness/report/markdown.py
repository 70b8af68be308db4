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

from deqbench.harness.results.run_folder import RunFolder
from deqbench.queries import QUERIES


def error_tables(rows: pd.DataFrame) -> str:
    worst = rows[(rows.metric == "relative_error") & (rows.output.fillna("") == "")]
    strategies = sorted(rows.strategy.unique())
    parts = []
    for problem, frame in rows.groupby("problem", sort=False):
        errors = worst[worst.problem == problem].pivot_table(
            index="strategy", columns="query", values="value"
        )
        queries = [q for q in QUERIES if q in set(frame["query"])]
        errors = errors.reindex(index=strategies, columns=queries)
        lines = [
            f"**{problem}** ({frame['size'].iloc[0]}): worst relative error against the oracle",
            "",
            "| strategy | " + " | ".join(queries) + " |",
            "|---|" + "---|" * len(queries),
        ]
        for strategy, row in errors.iterrows():
            cells = ("—" if pd.isna(value) else f"{value:.1e}" for value in row)
            lines.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


SIDE_BY_SIDE_COLUMNS = {
    "time_median": "median time (no compile)",
    "compile_time": "compile",
    "peak_rss_bytes": "peak memory over baseline",
    "relative_error": "worst relative error",
}


def side_by_side_table(rows: pd.DataFrame) -> str:
    """One line a (query, size, strategy); a cell without a value (stopped, unsupported,
    not compiled) shows "—" and its status says why."""
    whole = rows[rows.output.fillna("") == ""]
    values = whole.pivot_table(index=["query", "size", "strategy"], columns="metric", values="value")
    status = rows.groupby(["query", "size", "strategy"])["status"].first()
    header = ["query", "m", "strategy", *SIDE_BY_SIDE_COLUMNS.values(), "status"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for query, size, strategy in in_run_order(rows, status.index):
        metric = values.loc[(query, size, strategy)] if (query, size, strategy) in values.index else {}
        cells = [format_metric(name, metric.get(name)) for name in SIDE_BY_SIDE_COLUMNS]
        knobs = dict(knob.split("=") for knob in size.split(","))
        line = [query, knobs.get("m", size), f"`{strategy}`", *cells, status[(query, size, strategy)]]
        lines.append("| " + " | ".join(line) + " |")
    return "\n".join(lines)


def in_run_order(rows: pd.DataFrame, keys) -> list[tuple[str, str, str]]:
    """Queries as QUERIES lists them, sizes and strategies in the order the run met them."""
    sizes, strategies = list(dict.fromkeys(rows["size"])), list(dict.fromkeys(rows.strategy))
    queries = [q for q in QUERIES if q in set(rows["query"])]
    return sorted(keys, key=lambda k: (queries.index(k[0]), sizes.index(k[1]), strategies.index(k[2])))


def format_metric(name: str, value: float | None) -> str:
    if value is None or pd.isna(value):
        return "—"
    if name == "peak_rss_bytes":
        return f"{value / 2**20:.1f} MiB"
    if name == "relative_error":
        return f"{value:.1e}"
    if name == "compile_time":
        return f"{value:.2f} s"
    return f"{value * 1e3:.0f} ms" if value < 10 else f"{value:.1f} s"


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
