"""``deqbench report``'s documents: a Markdown summary and a self-contained HTML page.

Both hold the same sections: the runs' metadata, the summary tables (worst relative error,
median time and peak memory per strategy x query, a table per problem and size), the
figures (Markdown links them; HTML embeds them as base64 data URIs, so the page opens
offline and has no external reference), the verdict per strategy and query, the figures
left out and why, and every cell that failed, diverged, raised, timed out, ran out of
memory or was killed, with its message.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from deqbench.harness.report import data as rd
from deqbench.harness.report.figures import Made, Skipped, order_queries, order_strategies
from deqbench.harness.report.summary import format_bytes, format_error, format_seconds

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


# ------------------------------------------------------------------ tables
def metadata_table(rows: pd.DataFrame) -> Table:
    meta = rd.run_metadata(rows)
    header = [
        "source",
        "run",
        "started",
        "cells",
        "sizes",
        "deqbench",
        "torch",
        "numpy",
        "python",
        "device",
        "dtype",
        "threads",
        "git commit",
        "host",
    ]
    body = [
        [
            m["source"],
            m["run_id"],
            m["started"],
            str(m["cells"]),
            m["sizes"],
            m["deqbench_version"],
            m["torch_version"],
            m["numpy_version"],
            m["python_version"],
            f"{m['device']} ({m['device_name']})",
            m["dtype"],
            str(m["threads"]),
            m["git_commit"],
            m["host"],
        ]
        for _, m in meta.iterrows()
    ]
    return Table(header, body)


def summary_cell(cell: pd.Series) -> str:
    if cell["verdict"] == rd.VERDICT_UNSUPPORTED:
        return "—"
    error = format_error(cell["relative_error"])
    mark = {rd.VERDICT_FAILED: " ✗", rd.VERDICT_NOT_CLAIMED: " *", rd.VERDICT_STOPPED: ""}.get(
        cell["verdict"], ""
    )
    status = "" if cell["status"] in ("ok", "wrong") else f"{cell['status']} "
    if pd.isna(cell["time_median"]):
        return f"{status}{error}{mark}".strip() if error != "—" else cell["status"] + mark
    return (
        f"{status}{error}{mark} · {format_seconds(cell['time_median'])} · {format_bytes(cell['peak_memory'])}"
    )


def summary_tables(cells: pd.DataFrame) -> list[tuple[str, Table]]:
    """One table per problem, size and run condition: strategy x query."""
    labels = rd.condition_label(cells, rd.varying_settings(cells))
    tables = []
    keys = dict.fromkeys(zip(cells["problem"], cells["size"], labels, strict=True))
    for problem, size, label in keys:
        subset = cells[(cells["problem"] == problem) & (cells["size"] == size) & (labels == label)]
        first = subset.iloc[0]
        queries = order_queries(subset["query"])
        body = []
        for strategy in order_strategies(subset["strategy"]):
            row = [f"`{strategy}`"]
            for query in queries:
                match = subset[(subset["strategy"] == strategy) & (subset["query"] == query)]
                # several runs of one cell: the worst error is the one reported
                row.append(summary_cell(match.sort_values("relative_error").iloc[-1]) if len(match) else "")
            body.append(row)
        title = f"{problem} ({size}{', ' + label if label else ''}; {first['dtype']}, {first['device']})"
        tables.append((title, Table(["strategy", *queries], body)))
    return tables


def verdict_table(cells: pd.DataFrame) -> Table:
    """Per strategy and query, over every problem and size: what its answers came to."""
    queries = order_queries(cells["query"])
    body = []
    for strategy in order_strategies(cells["strategy"]):
        row = [f"`{strategy}`"]
        for query in queries:
            group = cells[(cells["strategy"] == strategy) & (cells["query"] == query)]
            row.append(verdict_text(group))
        body.append(row)
    return Table(["strategy", *queries], body)


def verdict_text(group: pd.DataFrame) -> str:
    if group.empty:
        return ""
    counts = group["verdict"].value_counts()
    run = len(group) - counts.get(rd.VERDICT_UNSUPPORTED, 0)
    if run == 0:
        return "unsupported"
    claimed = bool(group["expected_exact"].any())
    parts = []
    if counts.get(rd.VERDICT_FAILED):
        parts.append(f"✗ FAILS ({counts[rd.VERDICT_FAILED]} of {run})")
    if counts.get(rd.VERDICT_STOPPED):
        parts.append(f"stopped ({counts[rd.VERDICT_STOPPED]} of {run})")
    if counts.get(rd.VERDICT_NOT_CLAIMED):
        parts.append(f"wrong, not claimed ({counts[rd.VERDICT_NOT_CLAIMED]} of {run})")
    if not parts:
        return f"✓ exact ({run} of {run})" if claimed else f"right, not claimed ({run} of {run})"
    return "; ".join(parts)


def problem_cells(cells: pd.DataFrame) -> Table:
    """Every cell not ok nor unsupported, with its message (claimed-exact failures first)."""
    bad = cells[~cells["verdict"].isin([rd.VERDICT_OK, rd.VERDICT_UNSUPPORTED])]
    rank = {rd.VERDICT_FAILED: 0, rd.VERDICT_STOPPED: 1, rd.VERDICT_NOT_CLAIMED: 2}
    bad = bad.assign(rank=bad["verdict"].map(rank)).sort_values(["rank", "cell"], kind="stable")
    body = [
        [
            f"`{c['cell']}`",
            c["size"],
            c["status"],
            "yes" if c["expected_exact"] else "no",
            c["verdict"],
            c["message"] or "(no message)",
            c["source"],
        ]
        for _, c in bad.iterrows()
    ]
    return Table(["cell", "size", "status", "claimed exact", "verdict", "message", "source"], body)


# ---------------------------------------------------------------- rendering
def markdown_table(table: Table) -> str:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, table.header)) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in table.rows]
    return "\n".join(lines)


def html_table(table: Table) -> str:
    def cell(text: str, tag: str) -> str:
        escaped = html.escape(str(text))
        if escaped.startswith("`") and escaped.endswith("`"):
            escaped = f"<code>{escaped[1:-1]}</code>"
        css = ""
        if "✗" in escaped or "FAILS" in escaped:
            css = ' class="fail"'
        elif escaped.endswith(" *") or "not claimed (" in escaped or " * ·" in escaped:
            css = ' class="warn"'
        return f"<{tag}{css}>{escaped}</{tag}>"

    head = "".join(cell(h, "th") for h in table.header)
    body = "\n".join("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in table.rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


LEGEND = (
    "Each summary cell: worst relative error against the oracle · median time · peak memory. "
    "✗: wrong, diverged or raised on a query the strategy claims exact (a failure); *: wrong where "
    "exactness is not claimed (a finding); —: unsupported."
)


def write_markdown(path: Path, rows, cells, figures: list[Made | Skipped], baseline: str) -> None:
    parts = [
        "# deqbench report",
        "",
        f"{len(cells)} cells from {rows['source'].nunique()} input(s). {counts(cells)}",
    ]
    parts += ["", "## Runs", "", markdown_table(metadata_table(rows))]
    parts += ["", "## Summary", "", LEGEND]
    for title, table in summary_tables(cells):
        parts += ["", f"**{title}**", "", markdown_table(table)]
    parts += ["", "## Verdict per strategy and query", "", "Over every problem and size in the report.", ""]
    parts.append(markdown_table(verdict_table(cells)))
    parts += ["", "## Figures", ""]
    for figure in figures:
        if isinstance(figure, Made):
            image = figure.paths.get("png") or next(iter(figure.paths.values()))
            parts += [f"### {figure.title}", "", f"![{figure.title}]({image.name})", "", figure.caption, ""]
    skipped = [f for f in figures if isinstance(f, Skipped)]
    if skipped:
        parts += ["### Figures left out", ""]
        parts += [f"- {f.title} (`{f.name}`): {f.reason}" for f in skipped]
        parts.append("")
    failures = problem_cells(cells)
    parts += ["## Cells that failed, diverged, raised, timed out or ran out of memory", ""]
    parts.append(markdown_table(failures) if failures.rows else "None: every cell run was ok.")
    parts += ["", f"Baseline strategy for the ratio figures: `{baseline}`.", ""]
    path.write_text("\n".join(parts), encoding="utf-8")


def counts(cells: pd.DataFrame) -> str:
    verdicts = cells["verdict"].value_counts()
    order = [
        rd.VERDICT_OK,
        rd.VERDICT_FAILED,
        rd.VERDICT_NOT_CLAIMED,
        rd.VERDICT_STOPPED,
        rd.VERDICT_UNSUPPORTED,
    ]
    text = ", ".join(f"{verdicts[v]} {v}" for v in order if v in verdicts) + "."
    if verdicts.get(rd.VERDICT_FAILED):
        text += f" {verdicts[rd.VERDICT_FAILED]} failed on a query the strategy claims exact."
    else:
        text += " No strategy failed on a query it claims exact."
    return text


STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.fail { background: #fdd; font-weight: bold; }
td.warn { background: #fff3d6; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; max-width: 60em; }
code { font-size: 0.95em; }
"""


def embedded(figure: Made) -> str:
    """The figure as a data URI (PNG if written, else SVG): no file or network reference."""
    fmt = "png" if "png" in figure.paths else "svg"
    mime = "image/png" if fmt == "png" else "image/svg+xml"
    data = base64.b64encode(figure.paths[fmt].read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(figure.title)}" src="data:{mime};base64,{data}">'


def write_html(path: Path, rows, cells, figures: list[Made | Skipped], baseline: str) -> None:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>deqbench report</title>',
        f"<style>{STYLE}</style></head><body>",
        "<h1>deqbench report</h1>",
        f"<p>{len(cells)} cells from {rows['source'].nunique()} input(s). {e(counts(cells))}</p>",
        "<h2>Runs</h2>",
        html_table(metadata_table(rows)),
        "<h2>Summary</h2>",
        f"<p>{e(LEGEND)}</p>",
    ]
    for title, table in summary_tables(cells):
        parts += [f"<h3>{e(title)}</h3>", html_table(table)]
    parts += ["<h2>Verdict per strategy and query</h2>", "<p>Over every problem and size in the report.</p>"]
    parts.append(html_table(verdict_table(cells)))
    parts.append("<h2>Figures</h2>")
    for figure in figures:
        if isinstance(figure, Made):
            parts.append(
                f'<figure id="{e(figure.name)}"><h3>{e(figure.title)}</h3>{embedded(figure)}'
                f"<figcaption>{e(figure.caption)}</figcaption></figure>"
            )
    skipped = [f for f in figures if isinstance(f, Skipped)]
    if skipped:
        parts.append("<h3>Figures left out</h3><ul>")
        parts += [f"<li>{e(f.title)} (<code>{e(f.name)}</code>): {e(f.reason)}</li>" for f in skipped]
        parts.append("</ul>")
    failures = problem_cells(cells)
    parts.append("<h2>Cells that failed, diverged, raised, timed out or ran out of memory</h2>")
    parts.append(html_table(failures) if failures.rows else "<p>None: every cell run was ok.</p>")
    parts.append(f"<p>Baseline strategy for the ratio figures: <code>{e(baseline)}</code>.</p>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")


def write_report(
    rows: pd.DataFrame, out: Path, formats: list[str], baseline: str
) -> tuple[list[Made | Skipped], list[Path]]:
    """Figures, report.md and report.html in ``out`` (which exists); returns what was written."""
    from deqbench.harness.report.figures import make_figures

    cells = rd.cell_table(rows)
    figures = make_figures(cells, out, formats, baseline)
    write_markdown(out / MARKDOWN_FILE, rows, cells, figures, baseline)
    write_html(out / HTML_FILE, rows, cells, figures, baseline)
    return figures, [out / MARKDOWN_FILE, out / HTML_FILE]
