"""A training run's final table as text (terminal and Markdown) and its report documents.

The numbers come from :mod:`deqbench.harness.train.tables`; the figures from
:mod:`deqbench.harness.train.figures`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from rich.text import Text

from deqbench.harness.report.summary import terminal_safe
from deqbench.harness.report.units import format_bytes, format_seconds
from deqbench.harness.train.tables import final_table

# --------------------------------------------------------------- rendering
FINAL_HEADER = [
    "strategy",
    "time / step",
    "peak memory / step",
    "fwd / bwd iterations",
    "final loss",
    "final test error (min–max)",
    "time to target",
    "training time",
    "drift from reference",
]


def format_number(value: float, spec: str = ".2e") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def final_rows(table: pd.DataFrame) -> dict[str, tuple[str, list[list[str]]]]:
    """Per problem: a caption and the final table's rows as text."""
    tables = {}
    for problem, group in table.groupby("problem", sort=False):
        first = group.iloc[0]
        caption = (
            f"{problem}: {int(group['seeds'].max())} seed(s), {int(group['steps'].max())} steps; medians "
            f"over seeds; time to target: training wall time until the test error first reached "
            f"{first['target']:g} (seeds that reached it of all)"
        )
        body = []
        for _, r in group.iterrows():
            iterations = (
                "—"
                if math.isnan(r["forward_iterations"])
                else f"{r['forward_iterations']:.0f} / {r['backward_iterations']:.0f}"
            )
            reached = (
                f"{format_seconds(r['time_to_target'])} ({r['reached']} of {r['seeds']})"
                if r["reached"]
                else f"not reached (0 of {r['seeds']})"
            )
            error = (
                f"{format_number(r['final_error'])} ({format_number(r['final_error_min'])}–"
                f"{format_number(r['final_error_max'])})"
            )
            stopped = f" ({r['stopped']} stopped)" if r["stopped"] else ""
            drift = format_number(r["drift"], ".1e")
            body.append(
                [
                    f"`{r['strategy']}`{stopped}",
                    format_seconds(r["step_time"]),
                    format_bytes(r["memory"]),
                    iterations,
                    format_number(r["final_loss"]),
                    error,
                    reached,
                    format_seconds(r["total_time"]),
                    drift if r["strategy"] != r["drift_reference"] else "(reference)",
                ]
            )
        tables[problem] = (caption, body)
    return tables


def final_tables(table: pd.DataFrame) -> list:
    """The final table as one :class:`writer.Table` per problem, captioned."""
    from deqbench.harness.report.writer import Table, code

    tables = []
    for caption, body in final_rows(table).values():
        rows = [[code(row[0].split("`")[1]) if row[0].startswith("`") else row[0], *row[1:]] for row in body]
        tables.append(Table(FINAL_HEADER, rows, caption=caption))
    return tables


def plain_cell(cell: str) -> Text:
    """A final-table cell for the terminal: Markdown code marks dropped ("`analytic` (1
    stopped)" -> "analytic (1 stopped)"), control characters written out, never markup."""
    return Text(terminal_safe(re.sub(r"`([^`]*)`", r"\1", cell)))


def print_final_table(table: pd.DataFrame, console) -> None:
    from rich.table import Table as RichTable

    for caption, body in final_rows(table).values():
        rich_table = RichTable(title=plain_cell(caption), title_justify="left")
        for column in FINAL_HEADER:
            rich_table.add_column(column)
        for row in body:
            rich_table.add_row(*map(plain_cell, row))
        console.print(rich_table)


# ------------------------------------------------------------------ report
def training_document(rows: pd.DataFrame, figures: list):
    """What a training report says, as a :class:`writer.Document` (written like a run report)."""
    from deqbench.harness.report.documents import figure_blocks, metadata_table
    from deqbench.harness.report.writer import Document, Paragraph, Section, Table, code

    stopped = rows.drop_duplicates(["source", "cell"])
    stopped = stopped[stopped["status"] != "ok"]
    stopped_table = Table(
        ["cell", "status", "message"],
        [[code(c), s, m] for c, s, m in stopped[["cell", "status", "message"]].values],
    )
    intro = (
        f"{rows['cell'].nunique()} training cells from {rows['source'].nunique()} run(s). Each cell "
        "trains one strategy's gradient (or the MLP baseline) from the seed's initial parameters."
    )
    none = Paragraph("None: every cell trained to the end.")
    sections = [
        Section("Runs", [metadata_table(rows)]),
        Section("Final table", final_tables(final_table(rows))),
        Section("Figures", figure_blocks(figures)),
        Section("Cells that stopped", [stopped_table if len(stopped) else none]),
    ]
    return Document("deqbench training report", [intro], sections)


def write_training_report(rows: pd.DataFrame, out: Path, formats: list[str]):
    """Figures, report.md and report.html of training runs in ``out``; what was written."""
    from deqbench.harness.report.writer import write_documents
    from deqbench.harness.train.figures import make_training_figures

    figures = make_training_figures(rows, out, formats)
    return figures, write_documents(training_document(rows, figures), out)
