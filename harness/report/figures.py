"""The report's figures, drawn with seaborn on matplotlib's Agg backend.

Every function takes the cell table of :func:`report_data.cell_table` (one problem's
cells) and returns :class:`Made` (files written, PNG and/or SVG) or :class:`Skipped` (why
the data cannot support the figure). matplotlib and seaborn are imported inside the
functions that draw, never when deqbench is imported.

A strategy keeps its colour and marker in every figure of every report:
:func:`strategy_style` looks the name up in a fixed list of deqbench's own strategies and
falls back to a hash of the name for any other.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from deqbench.harness.report import data as rd
from deqbench.harness.report.units import format_ratio
from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.metrics import resolution
from deqbench.queries import QUERIES

#: deqbench's own strategies, sorted; each keeps the colour and marker of its position.
KNOWN_STRATEGIES = ("analytic", "analytic-seed", "implicit-vjp", "iterative-backward", "unrolled")
KNOWN_COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00")  # Okabe-Ito
KNOWN_MARKERS = ("o", "s", "^", "D", "v")
#: Any other strategy: picked by a hash of its name (stable from run to run).
OTHER_COLORS = ("#56B4E9", "#882255", "#44AA99", "#999933", "#661100", "#6699CC", "#AA4499", "#117733")
OTHER_MARKERS = ("P", "X", "*", "h", "<", ">", "p", "8")

FAIL_COLOR = "#D00000"  # claimed exact and wrong, diverged or raised
NOT_CLAIMED_COLOR = "#FF8C00"  # wrong where the strategy does not claim exactness
STOPPED_COLOR = "#B000B0"  # timeout, oom, killed
ERROR_FLOOR = 1e-17  # an exact 0 error is drawn here on log axes
MAX_CONDITION_ROWS = 4
#: At most this many panels side by side; more wrap onto the next line (a laptop's width).
MAX_COLUMNS = 4
#: More problems than this: figures across problems instead of a set per problem.
MAX_PROBLEM_FIGURES = 6
#: More x values than this: a log locator places the ticks, not one tick per value.
MAX_X_TICKS = 8
#: Below this median time per query, time figures carry a note (overhead and timer noise).
TINY_SECONDS = 3e-3
MIB = 2**20

TIME_LABEL = "time per query [s]\n(lower is better)"
ERROR_LABEL = "worst relative error vs oracle\n(lower is better)"
SAVED_LABEL = "autograd saved tensors [MiB]\n(lower is better)"


def memory_label(cells: pd.DataFrame) -> str:
    if (cells["memory_metric"] == "cuda_peak_bytes").any():
        return "CUDA peak memory [MiB]\n(lower is better)"
    return "peak memory over baseline [MiB]\n(resident set; lower is better)"


@dataclass
class Made:
    name: str
    title: str
    caption: str
    paths: dict[str, Path] = field(default_factory=dict)


@dataclass
class Skipped:
    name: str
    title: str
    reason: str


SAFE_FILE_NAME = re.compile(r"[A-Za-z0-9_.+-]+")


def figure_name(kind: str, *names: str) -> str:
    """A figure's file stem from its kind and the names it is about (a problem, a baseline).

    Names that are safe for files and Markdown links are kept as they are; any other has its
    unsafe characters replaced and a short hash of the name appended, so ``p/x`` and ``p_x``
    never share a file.
    """
    parts = [kind]
    for name in names:
        text = str(name)
        if SAFE_FILE_NAME.fullmatch(text) and not text.startswith("."):
            parts.append(text)
        else:
            digest = hashlib.sha1(text.encode()).hexdigest()[:8]
            parts.append(re.sub(r"[^A-Za-z0-9_+-]", "_", text)[:40] + "-" + digest)
    return "_".join(parts)


def panel_grid(plt, rows: int, panels: int, width: float = 3.6, height: float = 3.0, margin=(1.6, 0.8)):
    """A figure of ``rows`` logical rows of ``panels`` panels each, wrapped at MAX_COLUMNS.

    Returns (figure, axes per logical row, whether rows wrapped); the axes a wrapped last
    line leaves over are hidden.
    """
    columns = min(MAX_COLUMNS, max(panels, 1))
    lines = math.ceil(max(panels, 1) / columns)
    fig, axes = plt.subplots(
        rows * lines,
        columns,
        figsize=(margin[0] + width * columns, margin[1] + height * rows * lines),
        squeeze=False,
    )
    logical = []
    for r in range(rows):
        block = [axes[r * lines + i // columns][i % columns] for i in range(panels)]
        for i in range(panels, lines * columns):
            axes[r * lines + i // columns][i % columns].set_visible(False)
        logical.append(block)
    return fig, logical, lines > 1


def tiny_time_note(cells: pd.DataFrame) -> str:
    """A caption's note when some median times are under TINY_SECONDS, else ''."""
    tiny = cells[M.TIME_MEDIAN].dropna()
    tiny = tiny[tiny < TINY_SECONDS]
    if tiny.empty:
        return ""
    return (
        f" {len(tiny)} of the times drawn are under {TINY_SECONDS * 1e3:.0f} ms a query: at such sizes "
        "per-call overhead and timer noise weigh as much as the method, and rankings move from run to run."
    )


def resolved_memory(cells: pd.DataFrame, column: str) -> pd.Series:
    """``column`` (peak_memory or saved_tensor_bytes) with readings under the meter's
    resolution set to NaN: they are not drawn, and not divided."""
    floor = (
        cells["memory_metric"].map(resolution).astype(float)
        if column == "peak_memory"
        else resolution(column)
    )
    values = pd.to_numeric(cells[column], errors="coerce")  # an empty table's column may hold text
    return values.where(values >= floor)


# ----------------------------------------------------------------- styling
def strategy_style(name: str) -> tuple[str, str]:
    """(colour, marker) of a strategy, the same in every figure and every run."""
    if name in KNOWN_STRATEGIES:
        index = KNOWN_STRATEGIES.index(name)
        return KNOWN_COLORS[index], KNOWN_MARKERS[index]
    digest = zlib.crc32(name.encode())
    return OTHER_COLORS[digest % len(OTHER_COLORS)], OTHER_MARKERS[(digest // 7) % len(OTHER_MARKERS)]


def order_strategies(names) -> list[str]:
    names = set(names)
    return [s for s in KNOWN_STRATEGIES if s in names] + sorted(names - set(KNOWN_STRATEGIES))


def order_queries(names) -> list[str]:
    names = set(names)
    return [q for q in QUERIES if q in names] + sorted(names - set(QUERIES))


def libraries():
    """matplotlib's pyplot on the Agg backend, and seaborn with deqbench's theme."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)
    matplotlib.rcParams["svg.hashsalt"] = "deqbench"  # the same SVG for the same data
    matplotlib.rcParams["axes.titlesize"] = "medium"
    return plt, sns


def save(fig, out: Path, name: str, formats: list[str]) -> dict[str, Path]:
    import matplotlib.pyplot as plt

    paths = {}
    for fmt in formats:
        path = out / f"{name}.{fmt}"
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        paths[fmt] = path
    plt.close(fig)
    return paths


def strategy_legend(fig, strategies: list[str], **where) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=strategy_style(s)[0], marker=strategy_style(s)[1], linestyle="-", label=s)
        for s in strategies
    ]
    fig.legend(handles=handles, title="strategy", frameon=False, **where)


def format_tol(tol: float) -> str:
    return f"{tol:.0e}"


def tidy_log_axis(ax, axis: str, decades_only: bool = False) -> None:
    """Plain tick labels on a log axis (0.02, 0.05, 0.1 ...; 1e-10 for error axes), few of them."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator

    which = ax.yaxis if axis == "y" else ax.xaxis
    low, high = ax.get_ylim() if axis == "y" else ax.get_xlim()
    span = math.log10(high / low) if low > 0 and high > low else 1.0
    if decades_only:
        which.set_major_locator(LogLocator(base=10, numticks=7))
        which.set_major_formatter(
            FuncFormatter(lambda v, _: f"{v:.0e}".replace("e-0", "e-").replace("e+00", ""))
        )
    elif span >= 1.5:  # a tick a decade: 1-2-5 ticks over several decades overlap on a narrow panel
        which.set_major_locator(LogLocator(base=10, numticks=7))
        which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    elif span >= 1:
        which.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0), numticks=6))
        which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    else:  # less than a decade: four ticks evenly spaced on the log axis
        from matplotlib.ticker import FixedLocator

        ticks = [float(f"{t:.2g}") for t in np.geomspace(low, high, 6)[1:-1]]
        which.set_major_locator(FixedLocator(ticks))
        which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    which.set_minor_locator(NullLocator())
    which.set_minor_formatter(NullFormatter())


# ----------------------------------------------------------- heatmap
def heat(ax, values: pd.DataFrame, cmap, norm) -> None:
    """A strategy x query heatmap (NaN left to the axes' background).

    Drawn with pcolormesh rather than seaborn.heatmap, which redraws the whole figure for
    every panel (to check its tick labels) and made many-panel figures take tens of seconds.
    """
    data = np.ma.masked_invalid(values.to_numpy(dtype=float))
    ax.pcolormesh(data, cmap=cmap, norm=norm, edgecolors="white", linewidth=1.5)
    ax.set_xlim(0, values.shape[1])
    ax.set_ylim(values.shape[0], 0)
    ax.set_xticks(np.arange(values.shape[1]) + 0.5, [str(c) for c in values.columns])
    ax.set_yticks(np.arange(values.shape[0]) + 0.5, [str(i) for i in values.index])
    ax.tick_params(length=0)
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


VERDICT_RANK = {
    rd.VERDICT_FAILED: 4,
    rd.VERDICT_STOPPED: 3,
    rd.VERDICT_NOT_CLAIMED: 2,
    rd.VERDICT_OK: 1,
    rd.VERDICT_UNSUPPORTED: 0,
}


def worst_cells(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (strategy, query): the worst relative error over sizes and runs, and the worst verdict."""
    records = []
    for (strategy, query), group in cells.groupby(["strategy", "query"]):
        ranked = group.assign(rank=group["verdict"].map(VERDICT_RANK)).sort_values("rank")
        worst = ranked.iloc[-1]
        records.append(
            {
                "strategy": strategy,
                "query": query,
                "relative_error": group["relative_error"].max(),
                "verdict": worst["verdict"],
                "status": worst["status"],
                "cells": len(group),
                "bad": int((group["verdict"] == worst["verdict"]).sum()),
            }
        )
    return pd.DataFrame.from_records(records)


def accuracy_heatmap(cells: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    """Strategy x query, one panel per run condition (settings such as f_max_iter that differ
    between runs); each cell the worst error over sizes, with failures marked."""
    name, title = figure_name("accuracy", problem), f"{problem}: accuracy (strategy x query)"
    if cells.empty:
        return Skipped(name, title, "no cells")
    plt, sns = libraries()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    labels = rd.condition_label(cells, rd.varying_settings(cells))
    conditions = list(dict.fromkeys(labels))
    strategies = order_strategies(cells["strategy"])
    queries = order_queries(cells["query"])
    errors = cells["relative_error"].clip(lower=ERROR_FLOOR)
    finite = np.log10(errors[errors.notna()]).tolist()
    norm = Normalize(vmin=math.floor(min([-16.0, *finite])), vmax=math.ceil(max([1.0, *finite])))
    cmap = sns.color_palette("mako_r", as_cmap=True)
    tols = sorted(cells["tol"].dropna().unique())
    width = 3.4 + 1.25 * len(queries)
    panel_height = 0.9 + 0.55 * len(strategies)
    fig, axes = plt.subplots(
        len(conditions),
        1,
        figsize=(width, 0.9 + panel_height * len(conditions)),
        squeeze=False,
    )
    for ax, condition in zip(axes[:, 0], conditions, strict=True):
        subset = cells[labels == condition]
        # each panel shows the strategies and queries its condition ran
        shown = order_strategies(subset["strategy"]), order_queries(subset["query"])
        draw_accuracy(ax, worst_cells(subset), *shown, norm, cmap)
        sizes = subset["size"].nunique()
        what = f"worst of {sizes} sizes" if sizes > 1 else subset["size"].iloc[0]
        ax.set_title(f"{problem} ({what})" + (f"\n{condition}" if condition else ""), loc="left")
    fig.tight_layout(rect=(0, 0.02, 0.86, 1))
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=fig.add_axes((0.88, 0.12, 0.018, 0.76)))
    tol_text = ", ".join(map(format_tol, tols))
    bar.set_label(f"log10 worst relative error (lower is better)\nred line: tolerance {tol_text}")
    for tol in tols:
        bar.ax.axhline(math.log10(tol), color=FAIL_COLOR, linewidth=3)
    fig.text(
        0.01,
        0.0,
        "✗ red box: wrong, diverged or raised on a query the strategy claims exact (a failure)\n"
        "* dashed orange box: wrong where exactness is not claimed    magenta box: timeout, oom or killed    "
        "hatched: unsupported",
        fontsize=7.5,
        ha="left",
        va="top",
    )
    caption = (
        "Colour: log10 of the worst relative error against the oracle over the cell's outputs"
        + (" and sizes" if cells["size"].nunique() > 1 else "")
        + f"; the red line on the colour bar is the tolerance ({tol_text})."
        + (" One panel per run condition." if len(conditions) > 1 else "")
    )
    return Made(name, title, caption, save(fig, out, name, formats))


def draw_accuracy(ax, worst: pd.DataFrame, strategies, queries, norm, cmap) -> None:
    from matplotlib.patches import Rectangle

    errors = worst.pivot(index="strategy", columns="query", values="relative_error").reindex(
        index=strategies, columns=queries
    )
    logs = np.log10(errors.clip(lower=ERROR_FLOOR))
    info = worst.set_index(["strategy", "query"])
    ax.set_facecolor("#E6E6E6")  # unsupported, not run, or no error measured
    heat(ax, logs, cmap, norm)
    for i, strategy in enumerate(strategies):
        for j, query in enumerate(queries):
            if (strategy, query) not in info.index:
                ax.text(j + 0.5, i + 0.5, "not run", ha="center", va="center", fontsize=8, color="#555")
                continue
            cell = info.loc[(strategy, query)]
            value, verdict = cell["relative_error"], cell["verdict"]
            if verdict == rd.VERDICT_UNSUPPORTED:
                ax.add_patch(Rectangle((j, i), 1, 1, fill=False, hatch="///", edgecolor="#BBBBBB", lw=0))
                ax.text(j + 0.5, i + 0.5, "unsupported", ha="center", va="center", fontsize=7.5, color="#444")
                continue
            text = f"{value:.1e}" if not pd.isna(value) else str(cell["status"])
            if not pd.isna(value) and verdict in (rd.VERDICT_FAILED, rd.VERDICT_STOPPED):
                text = f"{text}\n{cell['status']}"
            dark = not pd.isna(value) and norm(logs.loc[strategy, query]) > 0.45
            color, weight = ("white" if dark else "black"), "normal"
            if verdict == rd.VERDICT_FAILED:
                text, weight = "✗ " + text, "bold"
                ax.add_patch(Rectangle((j + 0.04, i + 0.06), 0.92, 0.88, fill=False, ec=FAIL_COLOR, lw=3))
            elif verdict == rd.VERDICT_NOT_CLAIMED:
                text = text + " *"
                ax.add_patch(
                    Rectangle(
                        (j + 0.05, i + 0.08), 0.9, 0.84, fill=False, ec=NOT_CLAIMED_COLOR, lw=2, ls="--"
                    )
                )
            elif verdict == rd.VERDICT_STOPPED:
                ax.add_patch(Rectangle((j + 0.04, i + 0.06), 0.92, 0.88, fill=False, ec=STOPPED_COLOR, lw=3))
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=8, color=color, weight=weight)
    ax.set_xlabel("query")
    ax.set_ylabel("strategy")
    ax.tick_params(axis="x", rotation=0)
    ax.tick_params(axis="y", rotation=0)


# ---------------------------------------------------------- line figures
def plotted(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells that were measured (a median time exists)."""
    return cells[cells["time_median"].notna()]


def size_axis(cells: pd.DataFrame) -> tuple[str | None, list[str]]:
    """The x knob (most distinct values) and the other varying knobs, as ``knob:`` columns."""
    knobs = rd.varying_knobs(cells)
    if not knobs:
        return None, []
    counts = {k: len({kn.get(k) for kn in cells["knobs"]}) for k in knobs}
    x = max(knobs, key=lambda k: counts[k])
    return x, [k for k in knobs if k != x]


def condition_groups(
    cells: pd.DataFrame, columns: list[str], x: str
) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """Groups of cells sharing every ``columns`` value with >= 2 distinct x, and the labels left out."""
    labels = rd.condition_label(cells, columns)
    kept, dropped = [], []
    for label in dict.fromkeys(labels):
        group = cells[labels == label]
        if group.groupby(["strategy", "query"])[x].nunique().max() >= 2:
            kept.append((label, group))
        else:
            dropped.append(label or "(all)")
    return kept, dropped


def line_grid(
    groups: list[tuple[str, pd.DataFrame]],
    x: str,
    x_label: str,
    metrics: list[tuple[str, str, float, str | None]],
    title: str,
    log_x: bool = True,
):
    """Rows: (condition, metric); columns: queries; a line per strategy, log-log.

    ``metrics``: (column, y label, divide by, IQR column for a band or None).
    """
    plt, sns = libraries()
    queries = order_queries(pd.concat([g for _, g in groups])["query"])
    rows = [(label, group, metric) for label, group in groups for metric in metrics]
    fig, grid, wrapped = panel_grid(plt, len(rows), len(queries))
    strategies: set[str] = set()
    for r, (label, group, (column, y_label, scale, band)) in enumerate(rows):
        for c, query in enumerate(queries):
            ax = grid[r][c]
            data = group[(group["query"] == query) & group[column].notna() & (group[column] > 0)]
            for strategy in order_strategies(data["strategy"]):
                series = data[data["strategy"] == strategy].groupby(x)
                med = series[column].median() / scale
                color, marker = strategy_style(strategy)
                sns.lineplot(x=med.index, y=med.values, ax=ax, color=color, marker=marker, markersize=7)
                strategies.add(strategy)
                if band:
                    half = series[band].median() / scale / 2
                    lower = (med - half).clip(lower=med * 0.05)
                    ax.fill_between(
                        med.index, lower.values, (med + half).values, color=color, alpha=0.2, lw=0
                    )
            ax.set_title(query + (f"\n{label}" if label else ""), fontsize=9)
            ax.set_xlabel(x_label if wrapped or r == len(rows) - 1 else "")
            ax.set_ylabel(y_label if c % MAX_COLUMNS == 0 else "")
            if data.empty:
                ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.set_yscale("log")
            tidy_log_axis(ax, "y")
            if log_x:
                size_ticks(ax, sorted(data[x].unique()))
            else:
                from matplotlib.ticker import MaxNLocator

                ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    fig.suptitle(title, x=0.01, ha="left", y=1.0)
    fig.tight_layout()
    strategy_legend(fig, order_strategies(strategies), loc="center left", bbox_to_anchor=(1.0, 0.5))
    return fig


def size_ticks(ax, xs: list) -> None:
    """A log2 x axis with a tick per size, or a log locator's ticks over many sizes."""
    from matplotlib.ticker import LogLocator, NullLocator, ScalarFormatter

    ax.set_xscale("log", base=2)
    if len(xs) <= MAX_X_TICKS:
        ax.set_xticks(xs)
        ax.set_xticklabels([rd.format_value(v) for v in xs])
    else:
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=6))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())


def time_vs_size(cells: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    name, title = figure_name("time_vs_size", problem), f"{problem}: wall time against size"
    return size_figure(
        cells,
        problem,
        out,
        formats,
        name,
        title,
        [(M.TIME_MEDIAN, TIME_LABEL, 1.0, M.TIME_IQR)],
        "Median wall time of the timed repeats; the band is median ± IQR/2 of those repeats."
        + tiny_time_note(plotted(cells)),
    )


def memory_vs_size(cells: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    name, title = figure_name("memory_vs_size", problem), f"{problem}: memory against size"
    resolved = cells.assign(peak_memory=resolved_memory(cells, "peak_memory"))
    return size_figure(
        resolved,
        problem,
        out,
        formats,
        name,
        title,
        [("peak_memory", memory_label(cells), MIB, None), (M.SAVED_TENSOR_BYTES, SAVED_LABEL, MIB, None)],
        "Top: peak memory of one query over the worker's warmed-up baseline; bottom: bytes autograd "
        "saved for backward. Readings below what the meter resolves (64 KiB for the resident set) are "
        "not drawn: they say only that the memory was too small to see.",
    )


def size_figure(cells, problem, out, formats, name, title, metrics, caption) -> Made | Skipped:
    measured = plotted(cells)
    x, others = size_axis(measured)
    if x is None:
        sizes = ", ".join(dict.fromkeys(cells["size"]))
        return Skipped(name, title, f"one size only ({sizes}): nothing to plot against size")
    measured = rd.with_knob_columns(measured, [x, *others])
    conditions = [f"knob:{k}" for k in others] + rd.varying_settings(measured)
    groups, dropped = condition_groups(measured, conditions, f"knob:{x}")
    if not groups:
        return Skipped(name, title, f"no series has two or more values of {x} ({'; '.join(dropped)})")
    fig = line_grid(groups, f"knob:{x}", f"{x} (size knob, log scale)", metrics, title)
    if dropped:
        caption += f" Left out (one value of {x} only): {'; '.join(dropped)}."
    return Made(name, title, caption, save(fig, out, name, formats))


ITERATION_SETTINGS = ("f_tol", "b_tol", "f_max_iter", "b_max_iter")


def memory_vs_iterations(cells: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    name, title = (
        figure_name("memory_vs_iterations", problem),
        f"{problem}: memory against forced forward iterations",
    )
    measured = plotted(cells)
    if measured["f_max_iter"].nunique() < 2:
        values = ", ".join(rd.format_value(v) for v in sorted(cells["f_max_iter"].unique()))
        return Skipped(
            name,
            title,
            f"f_max_iter is {values} in every cell: no forced iteration counts (run with a tiny f_tol and "
            "several --f-max-iter values)",
        )
    measured = measured[measured["forward_iterations"].notna()]
    knobs = rd.varying_knobs(measured)
    measured = rd.with_knob_columns(measured, knobs)
    settings = [c for c in rd.varying_settings(measured) if c not in ITERATION_SETTINGS]
    groups, dropped = condition_groups(
        measured, [f"knob:{k}" for k in knobs] + settings, "forward_iterations"
    )
    if not groups:
        return Skipped(name, title, "no series has two or more forward iteration counts")
    metrics = [
        ("peak_memory", memory_label(cells), MIB, None),
        ("saved_tensor_bytes", SAVED_LABEL, MIB, None),
    ]
    fig = line_grid(
        groups, "forward_iterations", "forward iterations (forced by f_max_iter)", metrics, title, log_x=False
    )
    caption = (
        "x: forward solver iterations each cell ran (the rows' forward_iterations; with an unreachable "
        "f_tol it equals f_max_iter). Memory that grows with iterations is memory kept per iteration."
    )
    if dropped:
        caption += f" Left out (one iteration count only): {'; '.join(dropped)}."
    return Made(name, title, caption, save(fig, out, name, formats))


# ------------------------------------------------------------- Pareto
def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Points no other point beats on both x and y (both lower is better), by x."""
    ordered = points.sort_values([x, y])
    best = math.inf
    keep = []
    for index, value in zip(ordered.index, ordered[y], strict=True):
        if value < best:
            keep.append(index)
            best = value
    return ordered.loc[keep]


def time_vs_error(cells: pd.DataFrame, problem: str, out: Path, formats: list[str]) -> Made | Skipped:
    name, title = (
        figure_name("time_vs_error", problem),
        f"{problem}: time against error, with the Pareto frontier",
    )
    data = plotted(cells)
    data = data[data["relative_error"].notna()].copy()
    if data.empty:
        return Skipped(name, title, "no cell has both a time and an error")
    plt, sns = libraries()
    knobs = rd.varying_knobs(data)
    data = rd.with_knob_columns(data, knobs)
    conditions = [f"knob:{k}" for k in knobs] + rd.varying_settings(data)
    labels = rd.condition_label(data, conditions)
    order = list(dict.fromkeys(labels))
    left_out = order[MAX_CONDITION_ROWS:]
    order = order[:MAX_CONDITION_ROWS]
    queries = order_queries(data["query"])
    data["plot_error"] = data["relative_error"].clip(lower=ERROR_FLOOR)
    fig, grid, wrapped = panel_grid(plt, len(order), len(queries), margin=(1.2, 0.6))
    tols = sorted(data["tol"].dropna().unique())
    for r, label in enumerate(order):
        for c, query in enumerate(queries):
            ax = grid[r][c]
            panel = data[(labels == label) & (data["query"] == query)]
            for strategy in order_strategies(panel["strategy"]):
                points = panel[panel["strategy"] == strategy]
                color, marker = strategy_style(strategy)
                failed = points["verdict"] == rd.VERDICT_FAILED
                sns.scatterplot(
                    x=points["time_median"],
                    y=points["plot_error"],
                    ax=ax,
                    color=color,
                    marker=marker,
                    s=70,
                    edgecolor=[FAIL_COLOR if f else "white" for f in failed],
                    linewidth=[2 if f else 0.5 for f in failed],
                )
            if len(panel):
                front = pareto_front(panel, "time_median", "plot_error")
                ax.step(
                    front["time_median"],
                    front["plot_error"],
                    where="post",
                    color="#444444",
                    lw=1.2,
                    ls="--",
                    zorder=0,
                    label="Pareto frontier",
                )
            for tol in tols:
                ax.axhline(tol, color=FAIL_COLOR, lw=0.8, ls=":")
                ax.text(
                    1.0,
                    tol,
                    "tol ",
                    color=FAIL_COLOR,
                    fontsize=7,
                    va="bottom",
                    ha="right",
                    transform=ax.get_yaxis_transform(),
                )
            ax.set_title(query + (f"\n{label}" if label else ""), fontsize=9)
            ax.set_xlabel(TIME_LABEL if wrapped or r == len(order) - 1 else "")
            ax.set_ylabel(ERROR_LABEL if c % MAX_COLUMNS == 0 else "")
            if panel.empty:
                ax.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=ax.transAxes)
                continue
            ax.set_xscale("log")
            ax.set_yscale("log")
            tidy_log_axis(ax, "x")
            tidy_log_axis(ax, "y", decades_only=True)
    fig.suptitle(title, x=0.01, ha="left", y=1.0)
    fig.tight_layout()
    strategy_legend(fig, order_strategies(data["strategy"]), loc="center left", bbox_to_anchor=(1.0, 0.5))
    caption = (
        "Each point a cell; the dashed step line joins the cells no other cell beats on both time and "
        "error (the Pareto frontier, lower left is better). A red edge marks a claimed-exact failure. "
        f"Errors of exactly 0 are drawn at {ERROR_FLOOR:.0e}."
    ) + tiny_time_note(data)
    if left_out:
        caption += f" Left out (more than {MAX_CONDITION_ROWS} sizes/settings): {'; '.join(left_out)}."
    return Made(name, title, caption, save(fig, out, name, formats))


# ------------------------------------------------------------- baseline
RATIO_METRICS = (
    ("time_median", "time"),
    ("peak_memory", "peak memory"),
    ("saved_tensor_bytes", "autograd saved bytes"),
)


def baseline_ratios(cells: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """strategy / baseline of each ratio metric, matched within a run on query and size."""
    measured = plotted(cells)
    measured = measured.assign(
        peak_memory=resolved_memory(measured, "peak_memory"),
        saved_tensor_bytes=resolved_memory(measured, M.SAVED_TENSOR_BYTES),
    )
    key = ["source", "run_id", "problem", "query", "size"]
    base = measured[measured["strategy"] == baseline][key + [m for m, _ in RATIO_METRICS]]
    base = base.drop_duplicates(key)
    merged = measured.merge(base, on=key, suffixes=("", "_baseline"))
    for metric, _ in RATIO_METRICS:
        denominator = merged[f"{metric}_baseline"].where(merged[f"{metric}_baseline"] > 0)
        merged[f"{metric}_ratio"] = merged[metric] / denominator
    return merged


def relative_to_baseline(
    cells: pd.DataFrame, problem: str, baseline: str, out: Path, formats: list[str]
) -> Made | Skipped:
    name, title = (
        figure_name("relative_to", baseline, problem),
        f"{problem}: time and memory relative to {baseline}",
    )
    if baseline not in set(cells["strategy"]):
        return Skipped(name, title, f"{baseline} did not run on {problem}")
    ratios = baseline_ratios(cells, baseline)
    ratios = ratios[ratios["strategy"] != baseline]
    if ratios.empty:
        return Skipped(name, title, f"no other strategy was measured alongside {baseline} on {problem}")
    plt, sns = libraries()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    knobs = rd.varying_knobs(ratios)
    ratios = rd.with_knob_columns(ratios, knobs)
    labels = rd.condition_label(ratios, [f"knob:{k}" for k in knobs] + rd.varying_settings(ratios))
    order = list(dict.fromkeys(labels))
    left_out = order[:-MAX_CONDITION_ROWS] if len(order) > MAX_CONDITION_ROWS else []
    order = order[-MAX_CONDITION_ROWS:]  # the largest sizes come last in a run's order
    strategies = order_strategies(ratios["strategy"])
    queries = order_queries(ratios["query"])
    with np.errstate(divide="ignore", invalid="ignore"):  # a ratio of 0 (nothing saved) is -inf
        logs = np.log2(ratios[[f"{m}_ratio" for m, _ in RATIO_METRICS]].astype(float))
    finite = logs.to_numpy()[np.isfinite(logs.to_numpy())]
    limit = max(1.0, float(np.abs(finite).max()) if finite.size else 1.0)
    norm = Normalize(vmin=-limit, vmax=limit)
    cmap = sns.color_palette("vlag", as_cmap=True)
    # the three metrics side by side while that stays within a laptop's width; else stacked
    side_by_side = len(queries) <= 3
    columns = len(RATIO_METRICS) if side_by_side else 1
    lines = len(order) * len(RATIO_METRICS) // columns
    fig, axes = plt.subplots(
        lines,
        columns,
        figsize=(1.5 + columns * (1.4 + 1.0 * len(queries)), 0.9 + (0.8 + 0.5 * len(strategies)) * lines),
        squeeze=False,
    )
    for r, label in enumerate(order):
        for c, (metric, metric_name) in enumerate(RATIO_METRICS):
            ax = axes[r][c] if side_by_side else axes[r * len(RATIO_METRICS) + c][0]
            panel = ratios[labels == label]
            grid = panel.pivot_table(
                index="strategy", columns="query", values=f"{metric}_ratio", aggfunc="median"
            )
            grid = grid.reindex(index=strategies, columns=queries)
            ax.set_facecolor("#E6E6E6")
            with np.errstate(divide="ignore", invalid="ignore"):
                shade = np.log2(grid).clip(lower=-limit, upper=limit)
            heat(ax, shade, cmap, norm)
            for i, strategy in enumerate(grid.index):
                for j, query in enumerate(grid.columns):
                    value = grid.loc[strategy, query]
                    dark = not pd.isna(value) and abs(norm(shade.loc[strategy, query]) - 0.5) > 0.3
                    text = format_ratio(value)
                    ax.text(
                        j + 0.5,
                        i + 0.5,
                        text,
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if dark else "black",
                    )
            ax.grid(False)
            ax.set_title(metric_name + (f"\n{label}" if label else ""), fontsize=9)
            ax.set_xlabel("query" if r == len(order) - 1 or not side_by_side else "")
            ax.set_ylabel("strategy" if c == 0 or not side_by_side else "")
            ax.tick_params(axis="x", rotation=0)
            ax.tick_params(axis="y", rotation=0)
            if c and side_by_side:
                ax.set_yticklabels([])
    fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 0.9, 0.97))
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, cax=fig.add_axes((0.915, 0.15, 0.015, 0.7)))
    step = max(1, math.ceil(2 * limit / 8))
    ticks = [t for t in range(-math.floor(limit), math.floor(limit) + 1) if t % step == 0]
    bar.set_ticks(ticks)
    bar.set_ticklabels([format_ratio(2.0**t) for t in ticks])
    bar.set_label(f"strategy / {baseline} (below 1× is better)")
    caption = (
        f"Each strategy's median time, peak memory and autograd-saved bytes divided by {baseline}'s on "
        "the same query and size in the same run (blue: less than the baseline; red: more). —: not "
        "measured, or memory below what the meter resolves (no ratio is taken of such a reading)."
    )
    if left_out:
        caption += f" Left out (only the {MAX_CONDITION_ROWS} last sizes are drawn): {'; '.join(left_out)}."
    return Made(name, title, caption, save(fig, out, name, formats))


# ------------------------------------------------------- across problems
ACROSS = (
    ("accuracy", M.RELATIVE_ERROR, ERROR_LABEL, "worst relative error"),
    ("time", M.TIME_MEDIAN, TIME_LABEL, "median time"),
)


def across_problems(cells: pd.DataFrame, kind: str, out: Path, formats: list[str]) -> Made | Skipped:
    """One panel per query: per strategy, one point per (problem, size) cell, log y."""
    (column, y_label, what) = next((c, y, w) for k, c, y, w in ACROSS if k == kind)
    name, title = (
        figure_name(f"{kind}_across_problems"),
        f"{what} across {cells['problem'].nunique()} problems",
    )
    data = cells[cells[column].notna()]
    if data.empty:
        return Skipped(name, title, f"no cell has a {what}")
    plt, _ = libraries()
    queries = order_queries(data["query"])
    strategies = order_strategies(data["strategy"])
    fig, grid, _ = panel_grid(plt, 1, len(queries), width=max(3.0, 0.7 * len(strategies) + 1.2))
    generator = np.random.default_rng(0)  # the jitter, the same in every report
    for ax, query in zip(grid[0], queries, strict=True):
        panel = data[data["query"] == query]
        for i, strategy in enumerate(strategies):
            points = panel[panel["strategy"] == strategy]
            if points.empty:
                continue
            color, marker = strategy_style(strategy)
            failed = (points["verdict"] == rd.VERDICT_FAILED).to_numpy()
            x = i + generator.uniform(-0.25, 0.25, len(points))
            y = points[column].clip(lower=ERROR_FLOOR).to_numpy()
            ax.scatter(x[~failed], y[~failed], color=color, marker=marker, s=14, alpha=0.6, lw=0)
            ax.scatter(x[failed], y[failed], color=color, marker=marker, s=22, edgecolor=FAIL_COLOR, lw=1.2)
        ax.set_xticks(range(len(strategies)), strategies, rotation=35, ha="right")
        ax.set_xlim(-0.6, len(strategies) - 0.4)
        ax.set_yscale("log")
        tidy_log_axis(ax, "y", decades_only=column == M.RELATIVE_ERROR)
        ax.set_title(query, fontsize=9)
        ax.set_ylabel(y_label if grid[0].index(ax) % MAX_COLUMNS == 0 else "")
    fig.suptitle(title, x=0.01, ha="left", y=1.0)
    fig.tight_layout()
    caption = (
        f"One point per problem and size: each strategy's {what} on each query (strategy on x, jittered); "
        "a red edge marks a failure on a query the strategy claims exact. Drawn instead of a set of figures "
        f"per problem because the report holds more than {MAX_PROBLEM_FIGURES} problems."
    )
    if column == M.TIME_MEDIAN:
        caption += tiny_time_note(data)
    return Made(name, title, caption, save(fig, out, name, formats))


# --------------------------------------------------------------- all
def make_figures(cells: pd.DataFrame, out: Path, formats: list[str], baseline: str) -> list[Made | Skipped]:
    """Every figure of a report: a set per problem, or, over many problems, figures across them."""
    problems = list(dict.fromkeys(cells["problem"]))
    if len(problems) > MAX_PROBLEM_FIGURES:
        return [across_problems(cells, kind, out, formats) for kind, *_ in ACROSS]
    made: list[Made | Skipped] = []
    for problem in problems:
        subset = cells[cells["problem"] == problem]
        made.append(accuracy_heatmap(subset, problem, out, formats))
        made.append(time_vs_size(subset, problem, out, formats))
        made.append(memory_vs_size(subset, problem, out, formats))
        made.append(memory_vs_iterations(subset, problem, out, formats))
        made.append(time_vs_error(subset, problem, out, formats))
        made.append(relative_to_baseline(subset, problem, baseline, out, formats))
    return made
