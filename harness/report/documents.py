"""``deqbench report``'s content: what a run report says, as a :class:`writer.Document`.

Sections, in order: the recommendation (one line per problem, the ranking per query, the
growth with size across a sweep, and the notes on noise), the runs' metadata, the summary
tables (worst relative error, median time with its spread and peak memory per strategy x
query, a table per problem and size), the verdict per strategy and query, the figures
(and those left out, with why), the cells that failed or were stopped, and, in a list of
their own, the deviations where no exactness is claimed. :mod:`.writer` writes it as
report.md and a self-contained report.html.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from deqbench.harness.report import data as rd
from deqbench.harness.report import recommend
from deqbench.harness.report.figures import Made, Skipped, order_queries, order_strategies
from deqbench.harness.report.units import format_error, format_memory, format_spread
from deqbench.harness.report.writer import (
    Cell,
    Document,
    Figure,
    Heading,
    Items,
    Paragraph,
    Section,
    Table,
    code,
    write_documents,
)

#: Above this many summary tables (problems x sizes x conditions), the report keeps each
#: problem's smallest and largest size and says how many it left out.
MAX_SUMMARY_TABLES = 24


# ------------------------------------------------------------------ tables
def metadata_table(rows: pd.DataFrame) -> Table:
    meta = rd.run_metadata(rows)
    header = [
        "source",
        "run",
        "started",
        "cells",
        "sizes",
        "versions",
        "device",
        "dtype",
        "threads",
        "commit",
        "host",
    ]
    body = [
        [
            m["source"],
            code(m["run_id"]),
            m["started"],
            str(m["cells"]),
            m["sizes"],
            f"deqbench {m['deqbench_version']}, torch {m['torch_version']}, numpy {m['numpy_version']}, "
            f"python {m['python_version']}",
            f"{m['device']} ({m['device_name']})",
            m["dtype"],
            str(m["threads"]),
            code(m["git_commit"]),
            m["host"],
        ]
        for _, m in meta.iterrows()
    ]
    return Table(header, body)


MARKS = {rd.VERDICT_FAILED: " ✗", rd.VERDICT_NOT_CLAIMED: " *"}
TONES = {rd.VERDICT_FAILED: "fail", rd.VERDICT_NOT_CLAIMED: "warn", rd.VERDICT_STOPPED: "warn"}


def summary_cell(cell: pd.Series) -> Cell:
    """'2.8e-11 · 25.7 ms ± 1.2 ms · < 64 KiB' (error · median time ± IQR/2 · peak memory)."""
    if cell["verdict"] == rd.VERDICT_UNSUPPORTED:
        return Cell("—")
    mark, tone = MARKS.get(cell["verdict"], ""), TONES.get(cell["verdict"], "")
    status = "" if cell["status"] in ("ok", "wrong") else f"{cell['status']} "
    error = format_error(cell["relative_error"])
    if pd.isna(cell["time_median"]):
        return Cell(f"{status}{error}{mark}".strip() if error != "—" else cell["status"] + mark, tone=tone)
    time = format_spread(cell["time_median"], cell["time_iqr"])
    memory = format_memory(cell["peak_memory"], cell["memory_metric"])
    return Cell(f"{status}{error}{mark} · {time} · {memory}", tone=tone)


def summary_keys(cells: pd.DataFrame, labels: pd.Series) -> tuple[list[tuple], int]:
    """The (problem, size, condition)s to tabulate, and how many were left out."""
    keys = list(dict.fromkeys(zip(cells["problem"], cells["size"], labels, strict=True)))
    if len(keys) <= MAX_SUMMARY_TABLES:
        return keys, 0
    kept = []
    for problem in dict.fromkeys(k[0] for k in keys):
        mine = [k for k in keys if k[0] == problem]
        kept += list(dict.fromkeys([mine[0], mine[-1]]))
    kept = kept[:MAX_SUMMARY_TABLES]
    return kept, len(keys) - len(kept)


def summary_tables(cells: pd.DataFrame) -> tuple[list[Table], int]:
    """One table per problem, size and run condition (strategy x query); how many left out."""
    labels = rd.condition_label(cells, rd.varying_settings(cells))
    keys, left_out = summary_keys(cells, labels)
    groups = cells.assign(label=labels.values).groupby(["problem", "size", "label"], sort=False)
    tables = []
    for problem, size, label in keys:
        subset = groups.get_group((problem, size, label))
        first = subset.iloc[0]
        queries = order_queries(subset["query"])
        body = []
        for strategy in order_strategies(subset["strategy"]):
            row: list = [code(strategy)]
            mine = subset[subset["strategy"] == strategy]
            for query in queries:
                match = mine[mine["query"] == query]
                # several runs of one cell: the worst error is the one reported
                row.append(summary_cell(match.sort_values("relative_error").iloc[-1]) if len(match) else "")
            body.append(row)
        title = f"{problem} ({size}{', ' + label if label else ''}; {first['dtype']}, {first['device']})"
        tables.append(Table(["strategy", *queries], body, caption=title))
    return tables, left_out


def verdict_table(cells: pd.DataFrame) -> Table:
    """Per strategy and query, over every problem and size: what its answers came to."""
    queries = order_queries(cells["query"])
    grouped = dict(tuple(cells.groupby(["strategy", "query"])))
    body = []
    for strategy in order_strategies(cells["strategy"]):
        row: list = [code(strategy)]
        for query in queries:
            group = grouped.get((strategy, query), cells.iloc[:0])
            row.append(verdict_text(group))
        body.append(row)
    return Table(["strategy", *queries], body)


def verdict_text(group: pd.DataFrame) -> Cell:
    if group.empty:
        return Cell("")
    counts = group["verdict"].value_counts()
    run = len(group) - counts.get(rd.VERDICT_UNSUPPORTED, 0)
    if run == 0:
        return Cell("unsupported")
    claimed = bool(group["expected_exact"].any())
    parts = []
    if counts.get(rd.VERDICT_FAILED):
        parts.append(f"✗ FAILS ({counts[rd.VERDICT_FAILED]} of {run})")
    if counts.get(rd.VERDICT_STOPPED):
        parts.append(f"stopped ({counts[rd.VERDICT_STOPPED]} of {run})")
    if counts.get(rd.VERDICT_NOT_CLAIMED):
        parts.append(f"wrong, not claimed ({counts[rd.VERDICT_NOT_CLAIMED]} of {run})")
    if not parts:
        return Cell(f"✓ exact ({run} of {run})" if claimed else f"right, not claimed ({run} of {run})")
    tone = "fail" if counts.get(rd.VERDICT_FAILED) else "warn"
    return Cell("; ".join(parts), tone=tone)


CELL_HEADER = ["cell", "size", "status", "verdict", "message", "source"]


def cell_list(cells: pd.DataFrame, verdicts: list[str]) -> Table:
    """Cells with one of ``verdicts``, with their message, in that order of verdicts."""
    chosen = cells[cells["verdict"].isin(verdicts)]
    rank = {v: i for i, v in enumerate(verdicts)}
    chosen = chosen.assign(rank=chosen["verdict"].map(rank)).sort_values(["rank", "cell"], kind="stable")
    body = [
        [
            code(c["cell"]),
            c["size"],
            c["status"],
            Cell(c["verdict"], tone=TONES.get(c["verdict"], "")),
            c["message"] or "(no message)",
            c["source"],
        ]
        for _, c in chosen.iterrows()
    ]
    return Table(CELL_HEADER, body)


LEGEND = (
    "Each summary cell: worst relative error against the oracle · median time ± half the interquartile "
    'range of the timed repeats · peak memory ("< 64 KiB": below what the resident-set meter resolves). '
    "✗: wrong, diverged or raised on a query the strategy claims exact (a failure); *: wrong where "
    "exactness is not claimed (a finding); —: unsupported."
)


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


# ---------------------------------------------------------------- sections
def recommendation_section(cells: pd.DataFrame) -> Section:
    found = recommend.block(cells)
    blocks: list = [
        Paragraph(
            "Per problem, the strategy that is exact (claimed and verified against the oracle) and fastest "
            "on most of its queries:"
        ),
        Items(found.answers),
        Heading("Per query: exact strategies, fastest first"),
        Paragraph(
            "Each exact strategy with its median time ± half the IQR of its repeats and its peak memory; the "
            "others as a ratio to the fastest (time) and to the leanest (memory, shown beyond "
            f"{recommend.MEMORY_RATIO_SHOWN:g}×). ≈: the two strategies' repeat ranges overlap "
            "(within noise). "
            "Strategies not exact on the query are named apart with their error."
        ),
        Items(found.lines),
    ]
    if found.growth:
        blocks += [
            Heading("Growth with size"),
            Paragraph(
                "Exponent b of time ∝ size^b and memory ∝ size^b, fitted by least squares on log-log axes "
                "over every timed repeat (medians where the rows keep no repeats), ± one standard error "
                "of the slope."
            ),
            Items(found.growth),
        ]
    if found.notes:
        blocks += [Heading("Noise"), Items(found.notes)]
    return Section("Recommendation", blocks)


def summary_section(cells: pd.DataFrame) -> Section:
    tables, left_out = summary_tables(cells)
    blocks: list = [Paragraph(LEGEND), *tables]
    if left_out:
        blocks.append(
            Paragraph(
                f"{left_out} more tables (sizes between each problem's smallest and largest) are left out; "
                "deqbench export writes every cell."
            )
        )
    return Section("Summary", blocks)


def figure_blocks(figures: list[Made | Skipped]) -> list:
    blocks: list = [Figure(f.name, f.title, f.caption, f.paths) for f in figures if isinstance(f, Made)]
    skipped = [f for f in figures if isinstance(f, Skipped)]
    if skipped:
        blocks += [Heading("Figures left out"), Items([f"{f.title} ({f.name}): {f.reason}" for f in skipped])]
    return blocks


def failure_sections(cells: pd.DataFrame) -> list[Section]:
    failures = cell_list(cells, [rd.VERDICT_FAILED, rd.VERDICT_STOPPED])
    deviations = cell_list(cells, [rd.VERDICT_NOT_CLAIMED])
    return [
        Section(
            "Cells that failed, diverged, raised, timed out or ran out of memory",
            [failures if failures.rows else Paragraph("None: every cell run was ok or is listed below.")],
        ),
        Section(
            "Deviations where no exactness is claimed",
            [
                Paragraph("Findings, not failures: the strategy does not claim exactness on these queries."),
                deviations if deviations.rows else Paragraph("None."),
            ],
        ),
    ]


def run_document(
    rows: pd.DataFrame, cells: pd.DataFrame, figures: list[Made | Skipped], baseline: str
) -> Document:
    intro = [f"{len(cells)} cells from {rows['source'].nunique()} input(s). {counts(cells)}"]
    sections = [
        recommendation_section(cells),
        Section("Runs", [metadata_table(rows)]),
        summary_section(cells),
        Section(
            "Verdict per strategy and query",
            [Paragraph("Over every problem and size in the report."), verdict_table(cells)],
        ),
        Section(
            "Figures",
            [*figure_blocks(figures), Paragraph(f"Baseline strategy for the ratio figures: {baseline}.")],
        ),
        *failure_sections(cells),
    ]
    return Document("deqbench report", intro, sections)


def write_report(
    rows: pd.DataFrame, out: Path, formats: list[str], baseline: str
) -> tuple[list[Made | Skipped], list[Path]]:
    """Figures, report.md and report.html in ``out`` (which exists); returns what was written."""
    from deqbench.harness.report.figures import make_figures

    cells = rd.cell_table(rows)
    figures = make_figures(cells, out, formats, baseline)
    return figures, write_documents(run_document(rows, cells, figures, baseline), out)
