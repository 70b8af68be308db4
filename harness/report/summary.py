"""The summary tables: strategy x query per problem, with wrong answers highlighted.

Each table cell shows the worst relative error against the oracle, the median time and the
peak memory of the query. Colours: green ok; red a failure of a strategy on a query it
claims exact (wrong, diverged, error); yellow a wrong answer on a query the strategy does
not claim (a finding, not a failure); magenta a cell stopped by --timeout or out of memory;
dim an unsupported cell.
"""

from __future__ import annotations

import pandas as pd
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from deqbench.harness.report.units import format_error, format_memory, format_seconds
from deqbench.harness.results import rows as results
from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.status import FAILED_VERIFICATION, UNVERIFIED, Status

MEMORY_METRICS = (M.PEAK_RSS_BYTES, M.CUDA_PEAK_BYTES)


def cell_style(status: str, expected_exact: bool) -> str:
    if status == Status.OK:
        return "green"
    if status == Status.UNSUPPORTED:
        return "dim"
    if status in UNVERIFIED:
        return "bold magenta" if expected_exact else "magenta"
    if status in FAILED_VERIFICATION and expected_exact:
        return "bold red"
    return "yellow"


def metric_value(cell_rows: pd.DataFrame, metrics: tuple[str, ...] | str) -> float:
    """A cell-level metric (the row with no output), NaN if the cell has none."""
    metrics = (metrics,) if isinstance(metrics, str) else metrics
    found = cell_rows[cell_rows["metric"].isin(metrics) & (cell_rows["output"] == "")]
    return float(found["value"].iloc[0]) if len(found) else float("nan")


def cell_text(cell_rows: pd.DataFrame) -> Text:
    first = cell_rows.iloc[0]
    status, exact = first["status"], bool(first["expected_exact"])
    style = cell_style(status, exact)
    if status == Status.UNSUPPORTED:
        return Text("—", style=style)
    if status in (Status.ERROR, *UNVERIFIED) and M.TIME_MEDIAN not in set(cell_rows["metric"]):
        return Text(status, style=style)
    label = status if status in (Status.DIVERGED, Status.ERROR) else ""
    error = format_error(metric_value(cell_rows, M.RELATIVE_ERROR))
    lines = [
        f"{label} {error}".strip() if label else f"err {error}",
        format_seconds(metric_value(cell_rows, M.TIME_MEDIAN)),
        memory_text(cell_rows),
    ]
    if status == Status.WRONG and not exact:
        lines[0] += " *"
    return Text("\n".join(lines), style=style)


def memory_text(cell_rows: pd.DataFrame) -> str:
    """The cell's peak memory; under the meter's resolution "< 64 KiB", not "0 B"."""
    found = cell_rows[cell_rows["metric"].isin(MEMORY_METRICS) & (cell_rows["output"] == "")]
    if found.empty:
        return format_memory(None, M.PEAK_RSS_BYTES)
    return format_memory(float(found["value"].iloc[0]), str(found["metric"].iloc[0]))


def problem_table(rows: pd.DataFrame, problem: str, size: str) -> Table:
    """One problem at one size (a sweep gives a table per size)."""
    subset = rows[(rows["problem"] == problem) & (rows["size"] == size)]
    first = subset.iloc[0]
    title = f"{problem}  ({first['size']}, {first['dtype']}, {first['device']})"
    table = Table(title=title, show_lines=True, title_justify="left")
    table.add_column("strategy", style="bold")
    table.add_column("backend")
    queries = list(dict.fromkeys(subset["query"]))
    for query in queries:
        table.add_column(query, justify="right")
    for strategy in dict.fromkeys(subset["strategy"]):
        cells = []
        for query in queries:
            cell_rows = subset[(subset["strategy"] == strategy) & (subset["query"] == query)]
            cells.append(cell_text(cell_rows) if len(cell_rows) else Text(""))
        backend = subset.loc[subset["strategy"] == strategy, "backend"].iloc[0]
        table.add_row(strategy, backend if isinstance(backend, str) else "", *cells)
    return table


def status_counts(rows: pd.DataFrame) -> Text:
    cells = results.cell_statuses(rows)
    counts = cells["status"].value_counts()
    parts = [f"{counts[s]} {s}" for s in Status if s in counts]
    failed = len(results.failed_cells(rows))
    unverified = len(results.unverified_cells(rows))
    text = Text(f"{len(cells)} cells: " + ", ".join(parts) + ". ")
    if failed:
        text.append(f"{failed} failed verification on a query the strategy claims exact. ", "bold red")
    if unverified:
        text.append(
            f"{unverified} claimed-exact cells were stopped (timeout, oom, killed) before they could "
            "be checked.",
            "bold magenta",
        )
    if not failed and not unverified:
        text.append("No strategy failed on a query it claims exact.", "green")
    return text


def notes(rows: pd.DataFrame) -> list[Text]:
    """One line per cell that is not ok or unsupported, with its message."""
    cells = results.cell_statuses(rows)
    lines = []
    for _, cell in cells[~cells["status"].isin([Status.OK, Status.UNSUPPORTED])].iterrows():
        style = cell_style(cell["status"], bool(cell["expected_exact"]))
        claim = "" if cell["expected_exact"] else " (not claimed exact)"
        lines.append(Text(f"{cell['cell']}: {cell['status']}{claim}: {cell['message']}", style=style))
    return lines


LEGEND = (
    "Each cell: worst relative error vs the oracle, median time, peak memory. "
    "Red: fails a query the strategy claims exact; yellow (*): wrong where no exactness is "
    "claimed; magenta: timeout, out of memory or killed; —: unsupported."
)


def render(rows: pd.DataFrame) -> Group:
    if rows.empty:
        return Group(Text("no finished cells"))
    instances = dict.fromkeys(zip(rows["problem"], rows["size"], strict=True))
    tables = [problem_table(rows, problem, size) for problem, size in instances]
    return Group(*tables, Text(LEGEND, style="dim"), status_counts(rows), *notes(rows))


def print_summary(rows: pd.DataFrame, console: Console | None = None) -> None:
    (console or Console()).print(render(rows))
