"""The summary tables: strategy x query per problem, with wrong answers highlighted.

Each table cell shows the worst relative error against the oracle, the median time and the
peak memory of the query. Colours: green ok; red a failure of a strategy on a query it
claims exact (wrong, diverged, error); yellow a deviation on a query the strategy does not
claim exact (a finding, not a failure: it reads "deviates, not claimed exact", never a bare
"wrong"); magenta a cell stopped by --timeout or out of memory; dim an unsupported cell.
The last line names the next command: the report of the run.
"""

from __future__ import annotations

import re

import pandas as pd
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from deqbench.harness.report.units import format_error, format_memory, format_seconds
from deqbench.harness.results import rows as results
from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.status import FAILED_VERIFICATION, UNVERIFIED, Status

MEMORY_METRICS = (M.PEAK_RSS_BYTES, M.CUDA_PEAK_BYTES)

#: Characters a result file may carry that a terminal would act on: C0 and C1 controls (ESC
#: starts title-set, clear-screen and link sequences) but tab and newline, and the bidi
#: overrides that reorder what is shown.
TERMINAL_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` with every terminal control character written out (ESC as ``\\x1b``)."""
    return TERMINAL_CONTROL.sub(lambda match: f"\\x{ord(match[0]):02x}", text)


def harmless(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with terminal_safe text in every string column (names and messages come from
    users' classes and result files, which anyone may have written)."""
    rows = rows.copy()
    for column in rows.select_dtypes(include=["object", "string"]).columns:
        rows[column] = rows[column].map(lambda text: terminal_safe(text) if isinstance(text, str) else text)
    return rows


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


#: What a cell with status "wrong" reads as where its strategy does not claim the query exact.
DEVIATES = "deviates, not claimed exact"


def status_label(status: str, expected_exact: bool) -> str:
    """A cell's status as the log and the summary say it: a wrong answer on a query the
    strategy does not claim exact is a deviation, not a failure; other statuses as they are."""
    return DEVIATES if status == Status.WRONG and not expected_exact else str(status)


def metric_value(cell_rows: pd.DataFrame | dict[str, float], metrics: tuple[str, ...] | str) -> float:
    """A cell-level metric (the row with no output), NaN if the cell has none; ``cell_rows``
    may be the cell's rows or their :func:`cell_metrics`."""
    metrics = (metrics,) if isinstance(metrics, str) else metrics
    values = cell_metrics(cell_rows) if isinstance(cell_rows, pd.DataFrame) else cell_rows
    return next((values[name] for name in metrics if name in values), float("nan"))


def cell_metrics(cell_rows: pd.DataFrame) -> dict[str, float]:
    """A cell's cell-level metrics (rows without an output) by name, the first of each."""
    return metrics_by_cell(cell_rows).get(cell_rows["cell"].iloc[0], {})


def metrics_by_cell(rows: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Every cell's cell-level metrics by name, in one pass over the rows (a filter per cell
    costs seconds on a folder of thousands of cells)."""
    level = rows[rows["output"] == ""]
    cells: dict[str, dict[str, float]] = {}
    for cell, name, value in zip(level["cell"], level["metric"], level["value"], strict=True):
        cells.setdefault(cell, {}).setdefault(name, float(value))
    return cells


def cell_text(cell_rows: pd.DataFrame, values: dict[str, float] | None = None) -> Text:
    """A table cell: status, error, time and memory (``values``: its :func:`cell_metrics`)."""
    first = cell_rows.iloc[0]
    status, exact = first["status"], bool(first["expected_exact"])
    style = cell_style(status, exact)
    if status == Status.UNSUPPORTED:
        return Text("—", style=style)
    values = cell_metrics(cell_rows) if values is None else values
    if status in (Status.ERROR, *UNVERIFIED) and M.TIME_MEDIAN not in values:
        return Text(status, style=style)
    label = status if status in (Status.DIVERGED, Status.ERROR) else ""
    error = format_error(metric_value(values, M.RELATIVE_ERROR))
    lines = [
        f"{label} {error}".strip() if label else f"err {error}",
        format_seconds(metric_value(values, M.TIME_MEDIAN)),
        memory_text(values),
    ]
    if status == Status.WRONG and not exact:
        lines[0] += " *"
    return Text("\n".join(lines), style=style)


def memory_text(values: dict[str, float]) -> str:
    """The cell's peak memory (``values``: its :func:`cell_metrics`); under the meter's
    resolution "< 64 KiB", not "0 B"."""
    metric = next((name for name in MEMORY_METRICS if name in values), None)
    if metric is None:
        return format_memory(None, M.PEAK_RSS_BYTES)
    return format_memory(values[metric], str(metric))


def instance_table(subset: pd.DataFrame, metrics: dict[str, dict[str, float]]) -> Table:
    """The table of one problem at one size (a sweep gives a table per size), from its rows
    and :func:`metrics_by_cell`."""
    first = subset.iloc[0]
    problem = first["problem"]
    title = f"{problem}  ({first['size']}, {first['dtype']}, {first['device']})"
    table = Table(title=Text(title), show_lines=True, title_justify="left")  # Text: never markup
    table.add_column("strategy", style="bold")
    table.add_column("backend")
    queries = list(dict.fromkeys(subset["query"]))
    for query in queries:
        table.add_column(query, justify="right")
    by_cell = dict(iter(subset.groupby(["strategy", "query"], sort=False, dropna=False)))
    for strategy in dict.fromkeys(subset["strategy"]):
        cells = []
        for query in queries:
            cell_rows = by_cell.get((strategy, query))
            if cell_rows is None:
                cells.append(Text(""))
            else:
                cells.append(cell_text(cell_rows, metrics.get(cell_rows["cell"].iloc[0], {})))
        backend = subset.loc[subset["strategy"] == strategy, "backend"].iloc[0]
        table.add_row(Text(strategy), Text(backend if isinstance(backend, str) else ""), *cells)
    return table


def status_counts(rows: pd.DataFrame) -> Text:
    cells = results.cell_statuses(rows)
    deviating = (cells["status"] == Status.WRONG) & ~cells["expected_exact"].astype(bool)
    counts = cells.loc[~deviating, "status"].value_counts()
    parts = [f"{counts[s]} {s}" for s in Status if s in counts]
    if deviating.any():
        parts.append(f"{int(deviating.sum())} {DEVIATES}")
    failed = len(results.failed_cells(rows))
    unverified = len(results.unverified_cells(rows))
    text = Text(f"{len(cells)} cell{'' if len(cells) == 1 else 's'}: " + ", ".join(parts) + ". ")
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
        exact = bool(cell["expected_exact"])
        style = cell_style(cell["status"], exact)
        label = status_label(cell["status"], exact)
        if not exact and label == cell["status"]:
            label += " (not claimed exact)"
        lines.append(Text(f"{cell['cell']}: {label}: {cell['message']}", style=style))
    return lines


LEGEND = (
    "Each cell: worst relative error vs the oracle, median time, peak memory. "
    "Red: fails a query the strategy claims exact; yellow (*): deviates where no exactness is "
    "claimed (a finding, not a failure); magenta: timeout, out of memory or killed; —: unsupported."
)


def render(rows: pd.DataFrame) -> Group:
    if rows.empty:
        return Group(Text("no finished cells"))
    rows = harmless(rows)
    instances = rows.groupby(["problem", "size"], sort=False, dropna=False)
    metrics = metrics_by_cell(rows)
    tables = [instance_table(subset, metrics) for _, subset in instances]
    # The counts last, just above the next command: after a long run they are what a reader
    # looks for, not under a page of per-cell notes.
    return Group(*tables, Text(LEGEND, style="dim"), *notes(rows), status_counts(rows))


def print_summary(rows: pd.DataFrame, console: Console | None = None) -> None:
    (console or Console()).print(render(rows))


def next_command(folder) -> str:
    """The line that ends a run's output: where its results are and the command that turns
    them into figures and a report."""
    return f"results: {folder}; next: deqbench report {folder} --out {folder}-report"
