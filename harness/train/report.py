"""A training run's final table as text (terminal and Markdown) and its report documents.

The numbers come from :mod:`deqbench.harness.train.tables`; the figures from
:mod:`deqbench.harness.train.figures`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from deqbench.harness.report.summary import format_bytes, format_seconds
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


def markdown_final_table(table: pd.DataFrame) -> str:
    from deqbench.harness.report.documents import Table, markdown_table

    parts = []
    for caption, body in final_rows(table).values():
        parts += [f"**{caption}**", "", markdown_table(Table(FINAL_HEADER, body)), ""]
    return "\n".join(parts)


def print_final_table(table: pd.DataFrame, console) -> None:
    from rich.table import Table as RichTable

    for caption, body in final_rows(table).values():
        rich_table = RichTable(title=caption, title_justify="left")
        for column in FINAL_HEADER:
            rich_table.add_column(column)
        for row in body:
            rich_table.add_row(*[cell.strip("`") for cell in row])
        console.print(rich_table)


# ------------------------------------------------------------------ report
def write_training_report(rows: pd.DataFrame, out: Path, formats: list[str]):
    """Figures, report.md and report.html of training runs in ``out``; what was written."""
    import html

    from deqbench.harness.report.documents import (
        HTML_FILE,
        MARKDOWN_FILE,
        STYLE,
        Table,
        embedded,
        html_table,
        markdown_table,
    )
    from deqbench.harness.report.documents import metadata_table as runs_table
    from deqbench.harness.report.figures import Made, Skipped
    from deqbench.harness.train.figures import make_training_figures

    figures = make_training_figures(rows, out, formats)
    table = final_table(rows)
    made = [f for f in figures if isinstance(f, Made)]
    skipped = [f for f in figures if isinstance(f, Skipped)]
    stopped = rows.drop_duplicates(["source", "cell"])
    stopped = stopped[stopped["status"] != "ok"]
    stopped_table = Table(
        ["cell", "status", "message"],
        [[f"`{c}`", s, m] for c, s, m in stopped[["cell", "status", "message"]].values],
    )
    intro = (
        f"{rows['cell'].nunique()} training cells from {rows['source'].nunique()} run(s). "
        "Each cell trains one "
        "strategy's gradient (or the MLP baseline) from the seed's initial parameters."
    )
    markdown = ["# deqbench training report", "", intro, "", "## Runs", "", markdown_table(runs_table(rows))]
    markdown += ["", "## Final table", "", markdown_final_table(table), "## Figures", ""]
    for figure in made:
        image = figure.paths.get("png") or next(iter(figure.paths.values()))
        markdown += [f"### {figure.title}", "", f"![{figure.title}]({image.name})", "", figure.caption, ""]
    markdown += [f"- left out {f.title}: {f.reason}" for f in skipped]
    markdown += ["", "## Cells that stopped", ""]
    markdown.append(markdown_table(stopped_table) if len(stopped) else "None: every cell trained to the end.")
    (out / MARKDOWN_FILE).write_text("\n".join(markdown) + "\n", encoding="utf-8")

    e = html.escape
    page = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">']
    page += [f"<title>deqbench training report</title><style>{STYLE}</style></head><body>"]
    page += ["<h1>deqbench training report</h1>", f"<p>{e(intro)}</p>", "<h2>Runs</h2>"]
    page += [html_table(runs_table(rows)), "<h2>Final table</h2>"]
    for caption, body in final_rows(table).values():
        page += [f"<p><b>{e(caption)}</b></p>", html_table(Table(FINAL_HEADER, body))]
    page.append("<h2>Figures</h2>")
    for figure in made:
        page.append(
            f'<figure id="{e(figure.name)}"><h3>{e(figure.title)}</h3>{embedded(figure)}'
            f"<figcaption>{e(figure.caption)}</figcaption></figure>"
        )
    page += [f"<p>left out {e(f.title)}: {e(f.reason)}</p>" for f in skipped]
    page.append("<h2>Cells that stopped</h2>")
    page.append(html_table(stopped_table) if len(stopped) else "<p>None: every cell trained to the end.</p>")
    page.append("</body></html>")
    (out / HTML_FILE).write_text("\n".join(page), encoding="utf-8")
    return figures, [out / MARKDOWN_FILE, out / HTML_FILE]
