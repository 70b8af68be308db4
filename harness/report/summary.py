"""The summary tables: strategy x query per problem, with wrong answers highlighted.

Each table cell shows the worst relative error against the oracle, the median time and the
peak memory of the query. Colours: green ok; red a failure of a strategy on a query it
claims exact (wrong, diverged, error); yellow a deviation on a query the strategy does not
claim exact (a finding, not a failure: it reads "deviates, not claimed exact", never a bare
"wrong"); magenta a cell stopped by --timeout or out of memory; dim an unsupported cell.
The last line names the next command: the report of the run.
"""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from deqbench.harness.results import rows as results
from deqbench.harness.results.status import FAILED_VERIFICATION, UNVERIFIED, Status

MEMORY_METRICS = ("peak_rss_bytes", "cuda_peak_bytes")


def format_error(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.1e}"


def format_seconds(value: float) -> str:
    if value is None or math.isnan(value):
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value * 1e9:.3g} ns"


def format_bytes(value: float) -> str:
    if value is None or math.isnan(value):
        return "—"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


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
    if status in (Status.ERROR, *UNVERIFIED) and "time_median" not in set(cell_rows["metric"]):
        return Text(status, style=style)
    label = status if status in (Status.DIVERGED, Status.ERROR) else ""
    error = format_error(metric_value(cell_rows, "relative_error"))
    lines = [
        f"{label} {error}".strip() if label else f"err {error}",
        format_seconds(metric_value(cell_rows, "time_median")),
        format_bytes(metric_value(cell_rows, MEMORY_METRICS)),
    ]
    if status == Status.WRONG and not exact:
        lines[0] += " *"
    return Text("\n".join(lines), style=style)


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
    instances = dict.fromkeys(zip(rows["problem"], rows["size"], strict=True))
    tables = [problem_table(rows, problem, size) for problem, size in instances]
    return Group(*tables, Text(LEGEND, style="dim"), status_counts(rows), *notes(rows))


def print_summary(rows: pd.DataFrame, console: Console | None = None) -> None:
    (console or Console()).print(render(rows))


def next_command(folder) -> str:
    """The line that ends a run's output: where its results are and the command that turns
    them into figures and a report."""
    return f"results: {folder}; next: deqbench report {folder} --out {folder}-report"
