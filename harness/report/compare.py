"""``deqbench compare A B``: the cells two runs share, side by side, as ratios B / A.

Cells are matched on their id without a sweep's ``@variant`` (strategy/problem/query) and
their ``size`` string, so a sweep's ``analytic/tanh/grad@m=64`` meets a plain run's
``analytic/tanh/grad`` at m=64. Where one side holds a cell more than once (several runs in
one export), the median of its measurements is used, its repeats are pooled, and its worst
status stands.

The settings in which the two sides differ (solver tolerances, dtype, threads, versions,
commit, host...) are listed first: a change in them explains many a change in the cells.

A change is flagged only when it is beyond the factor AND beyond the noise:

- time: B / A above ``threshold`` or below ``1/threshold``, and the Mann-Whitney U test on
  the two cells' repeats significant at :data:`noise.ALPHA` (:func:`noise.significant`;
  files without repeats fall back to the median ± IQR/2 bands being apart);
- memory (peak, autograd-saved): the ratio beyond the factor and the difference at least
  the meter's resolution (:data:`metrics.MEMORY_RESOLUTION`; the resident set moves in
  pages and arena steps), each side read as at least that resolution, so a 0 B reading
  never makes an infinite ratio;
- status: any change; ok -> wrong, diverged, error, timeout, oom or killed is a regression.

A regression (what ``--fail-on-regression FACTOR`` fails on) is a flagged slowdown or
memory growth beyond FACTOR, or ok -> not ok. Error ratios are shown, not judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from deqbench.harness.report import data as rd
from deqbench.harness.report import noise
from deqbench.harness.report.figures import Made, order_strategies
from deqbench.harness.report.units import (
    below_resolution,
    format_error,
    format_memory,
    format_ratio,
    format_spread,
)
from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.metrics import resolution
from deqbench.harness.results.status import Status

KEY = ["base_cell", "size"]
MEMORY_COLUMNS = ("peak_memory", M.SAVED_TENSOR_BYTES)
#: (column, name in tables, judged for regressions)
METRICS = (
    (M.TIME_MEDIAN, "time", True),
    ("peak_memory", "peak memory", True),
    (M.SAVED_TENSOR_BYTES, "saved bytes", True),
    (M.RELATIVE_ERROR, "error", False),
)
STATUS_RANK = {
    s: i
    for i, s in enumerate(["ok", "unsupported", "wrong", "diverged", "error", "timeout", "oom", "killed"])
}
#: Per-cell columns whose differing values are listed as the runs' differing settings.
SETTINGS = (
    *rd.SETTING_COLUMNS,
    "parallel_cells",  # cells side by side (--jobs) share the machine: times differ for it
    "tol",
    "preset",
    M.REPEATS,
    "deqbench_version",
    "torch_version",
    "numpy_version",
    "python_version",
    "git_commit",
    "device_name",
    "host",
)


# ------------------------------------------------------------------ matching
def collapse(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (base cell, size): median metrics, pooled repeats, worst status."""
    cells = cells.assign(rank=cells["status"].map(lambda s: STATUS_RANK.get(s, len(STATUS_RANK))))
    worst = cells.sort_values("rank").groupby(KEY, sort=False).tail(1).set_index(KEY)
    columns = [m for m, _, _ in METRICS] + [M.TIME_IQR]
    medians = cells.groupby(KEY, sort=False)[columns].median()
    pooled = cells.groupby(KEY, sort=False)["times"].agg(lambda t: tuple(x for times in t for x in times))
    ident = worst[["strategy", "problem", "query", "status", "expected_exact", "message", "memory_metric"]]
    return ident.join(medians).join(pooled)


def differing_settings(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(setting, A's values, B's values) for every setting whose values differ."""
    found = []
    for column in SETTINGS:
        if column not in a or column not in b:
            continue
        values_a, values_b = distinct(a[column]), distinct(b[column])
        if values_a != values_b:
            found.append((str(column), ", ".join(values_a), ", ".join(values_b)))
    return found


def distinct(values: pd.Series) -> list[str]:
    return sorted({rd.format_value(v) for v in values})


# ------------------------------------------------------------------ judging
def memory_change(row, column: str) -> float:
    """B / A of a memory metric with each side read as at least the meter's resolution;
    NaN when either is missing or the difference is under the resolution (page noise)."""
    before, after = row[f"{column}_a"], row[f"{column}_b"]
    if pd.isna(before) or pd.isna(after):
        return math.nan
    floor = resolution(row["memory_metric_a"] if column == "peak_memory" else column)
    if abs(after - before) < floor:
        return math.nan
    return max(after, floor) / max(before, floor)


def time_test(row) -> noise.Test:
    a = noise.Timing(row["time_median_a"], row["time_iqr_a"], row["times_a"])
    b = noise.Timing(row["time_median_b"], row["time_iqr_b"], row["times_b"])
    if pd.isna(a.median) or pd.isna(b.median):
        return noise.Test(False, math.nan, "not timed on both sides")
    return noise.significant(a, b)


def flagged(row, column: str, factor: float) -> bool:
    """Whether ``column`` changed beyond ``factor`` either way and beyond the noise."""
    ratio = row[f"{column}_ratio"]
    if pd.isna(ratio) or not (ratio > factor or ratio < 1 / factor):
        return False
    return bool(row["time_test"].significant) if column == M.TIME_MEDIAN else True


def compare_cells(a: pd.DataFrame, b: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The shared cells with A's and B's values, B / A ratios, flags and the order to list them."""
    left, right = collapse(rd.cell_table(a)), collapse(rd.cell_table(b))
    shared = left.join(right, lsuffix="_a", rsuffix="_b", how="inner").reset_index()
    if shared.empty:
        return shared
    with np.errstate(divide="ignore", invalid="ignore"):
        shared[f"{M.TIME_MEDIAN}_ratio"] = shared[f"{M.TIME_MEDIAN}_b"] / shared[f"{M.TIME_MEDIAN}_a"]
        shared[f"{M.RELATIVE_ERROR}_ratio"] = shared[f"{M.RELATIVE_ERROR}_b"] / shared[
            f"{M.RELATIVE_ERROR}_a"
        ].where(shared[f"{M.RELATIVE_ERROR}_a"] > 0)
    for column in MEMORY_COLUMNS:
        shared[f"{column}_ratio"] = shared.apply(lambda row, c=column: memory_change(row, c), axis=1)
    shared["time_test"] = shared.apply(time_test, axis=1)
    shared["status_changed"] = shared["status_a"] != shared["status_b"]
    shared["to_wrong"] = (shared["status_a"] == Status.OK) & ~shared["status_b"].isin(
        [Status.OK, Status.UNSUPPORTED]
    )
    shared["change"] = shared.apply(change_size, axis=1)
    shared["beyond"] = shared["status_changed"] | shared.apply(
        lambda row: any(flagged(row, c, threshold) for c, _, judged in METRICS if judged), axis=1
    )
    shared["changes"] = shared.apply(lambda row: describe(row, threshold), axis=1)
    shared = shared.sort_values(
        ["beyond", "to_wrong", "change"], ascending=[False, False, False], kind="stable"
    )
    shared["strategy"] = shared["strategy_a"]
    return shared.reset_index(drop=True)


def change_size(row) -> float:
    """The largest |log ratio| of the judged metrics (0 when nothing is measurable)."""
    sizes = [0.0]
    for column, _, judged in METRICS:
        ratio = row[f"{column}_ratio"]
        if judged and not pd.isna(ratio) and 0 < ratio < math.inf:
            sizes.append(abs(math.log(ratio)))
    return max(sizes)


def describe(row, threshold: float) -> str:
    words = []
    if row["status_changed"]:
        words.append(f"{row['status_a']} → {row['status_b']}")
    for column, name, judged in METRICS:
        ratio = row[f"{column}_ratio"]
        if not judged or pd.isna(ratio) or not (ratio > threshold or ratio < 1 / threshold):
            continue
        if flagged(row, column, threshold):
            test = row["time_test"]
            detail = f" (p = {test.p:.2g})" if column == M.TIME_MEDIAN and not math.isnan(test.p) else ""
            words.append(f"{name} ×{ratio:.3g}{detail}")
        else:
            words.append(f"{name} ×{ratio:.3g} within noise ({row['time_test'].how})")
    return ", ".join(words)


def regressions(shared: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Shared cells slower or hungrier by more than ``factor`` beyond the noise, or gone
    from ok to wrong, diverged, error, timeout, oom or killed."""

    def regressed(row) -> bool:
        if row["to_wrong"]:
            return True
        return any(
            judged and row[f"{column}_ratio"] > factor and flagged(row, column, factor)
            for column, _, judged in METRICS
        )

    return shared[shared.apply(regressed, axis=1)] if len(shared) else shared


# ------------------------------------------------------------------ output
HEADER = [
    "cell",
    "size",
    "status A → B",
    "time A",
    "time B",
    "B/A",
    "peak mem A",
    "peak mem B",
    "B/A",
    "saved A",
    "saved B",
    "B/A",
    "error A",
    "error B",
    "changes",
]


def time_ratio_text(row) -> str:
    text = format_ratio(row[f"{M.TIME_MEDIAN}_ratio"])
    return text if row["time_test"].significant or text == "—" else f"≈{text}"


def memory_ratio_text(row, column: str) -> str:
    metric = row["memory_metric_a"] if column == "peak_memory" else column
    if below_resolution(row[f"{column}_a"], metric) and below_resolution(row[f"{column}_b"], metric):
        return "—"
    return format_ratio(row[f"{column}_ratio"]) if not pd.isna(row[f"{column}_ratio"]) else "≈1×"


def ratio_rows(shared: pd.DataFrame) -> list[list[str]]:
    rows = []
    for _, r in shared.iterrows():
        status = r["status_a"] if not r["status_changed"] else f"{r['status_a']} → {r['status_b']}"
        memory_metric = r["memory_metric_a"]
        rows.append(
            [
                r["base_cell"],
                r["size"],
                status,
                format_spread(r["time_median_a"], r["time_iqr_a"]),
                format_spread(r["time_median_b"], r["time_iqr_b"]),
                time_ratio_text(r),
                format_memory(r["peak_memory_a"], memory_metric),
                format_memory(r["peak_memory_b"], r["memory_metric_b"]),
                memory_ratio_text(r, "peak_memory"),
                format_memory(r[f"{M.SAVED_TENSOR_BYTES}_a"], M.SAVED_TENSOR_BYTES),
                format_memory(r[f"{M.SAVED_TENSOR_BYTES}_b"], M.SAVED_TENSOR_BYTES),
                memory_ratio_text(r, M.SAVED_TENSOR_BYTES),
                format_error(r[f"{M.RELATIVE_ERROR}_a"]),
                format_error(r[f"{M.RELATIVE_ERROR}_b"]),
                r["changes"],
            ]
        )
    return rows


@dataclass
class Comparison:
    """What ``deqbench compare`` prints: the two sides, their differing settings, the cells."""

    a_name: str
    b_name: str
    settings: list[tuple[str, str, str]]
    shared: pd.DataFrame
    threshold: float

    @property
    def summary(self) -> str:
        beyond = int(self.shared["beyond"].sum())
        needed = noise.repeats_needed()
        return (
            f"{len(self.shared)} shared cells (matched on cell id and size); {beyond} changed beyond "
            f"×{self.threshold:g} and beyond the noise (listed first, largest change first). Ratios are "
            "B / A: above 1× B is slower, hungrier or less accurate. ≈: within noise (time: Mann-Whitney U "
            f"on the repeats, p < {noise.ALPHA:g}, which needs at least {needed} repeats a side; memory: a "
            "difference under the meter's resolution)."
        )


def comparison(a_rows, b_rows, a_name: str, b_name: str, threshold: float) -> Comparison:
    shared = compare_cells(a_rows, b_rows, threshold)
    settings = differing_settings(rd.cell_table(a_rows), rd.cell_table(b_rows))
    return Comparison(a_name, b_name, settings, shared, threshold)


def markdown(result: Comparison) -> str:
    from deqbench.harness.report.writer import Table, markdown_code, markdown_escape

    lines = [
        "# deqbench compare",
        "",
        f"A: {markdown_code(result.a_name)}  ",
        f"B: {markdown_code(result.b_name)}",
        "",
    ]
    if result.settings:
        lines += ["Settings that differ:", ""]
        lines += [Table(["setting", "A", "B"], [list(s) for s in result.settings]).markdown, ""]
    else:
        lines += ["Settings: the same on both sides.", ""]
    lines += [markdown_escape(result.summary), "", Table(HEADER, ratio_rows(result.shared)).markdown, ""]
    return "\n".join(lines)


def print_rich(result: Comparison, console) -> None:
    """The comparison as rich tables (no markup is read from names: every cell is Text)."""
    from rich.table import Table as RichTable
    from rich.text import Text

    console.print(Text(f"A: {result.a_name}\nB: {result.b_name}"))
    if result.settings:
        table = RichTable(title="Settings that differ", title_justify="left")
        for column in ("setting", "A", "B"):
            table.add_column(column)
        for row in result.settings:
            table.add_row(*map(Text, row))
        console.print(table)
    else:
        console.print(Text("Settings: the same on both sides."))
    console.print(Text(result.summary))
    table = RichTable(show_lines=False)
    for column in HEADER:
        table.add_column(column, overflow="fold")
    for flagged_row, row in zip(result.shared["beyond"], ratio_rows(result.shared), strict=True):
        style = "bold" if flagged_row else ""
        table.add_row(*[Text(str(cell), style=style) for cell in row])
    console.print(table)


def compare_figures(shared: pd.DataFrame, out: Path, formats: list[str], threshold: float) -> list[Made]:
    """A against B for time, peak memory, saved bytes and error: one point per shared cell.

    Memory readings below the meter's resolution are left out (their count is in the
    panel), so no point sits on an axis edge at a made-up floor.
    """
    from deqbench.harness.report.figures import (
        ERROR_FLOOR,
        MIB,
        libraries,
        save,
        strategy_legend,
        strategy_style,
        tidy_log_axis,
    )

    plt, sns = libraries()
    panels = [
        (M.TIME_MEDIAN, "time per query [s]", 1.0),
        ("peak_memory", "peak memory [MiB]", MIB),
        (M.SAVED_TENSOR_BYTES, "autograd saved [MiB]", MIB),
        (M.RELATIVE_ERROR, "worst relative error", 1.0),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 9.0), squeeze=False)
    for ax, (column, label, scale) in zip(axes.flat, panels, strict=True):
        data = shared[[f"{column}_a", f"{column}_b", "strategy", "memory_metric_a"]].dropna()
        hidden = 0
        if column in MEMORY_COLUMNS:
            floor = data["memory_metric_a"].map(resolution) if column == "peak_memory" else resolution(column)
            keep = (data[f"{column}_a"] >= floor) & (data[f"{column}_b"] >= floor)
            hidden, data = int((~keep).sum()), data[keep]
        a = data[f"{column}_a"].clip(lower=ERROR_FLOOR) / scale
        b = data[f"{column}_b"].clip(lower=ERROR_FLOOR) / scale
        for strategy in order_strategies(data["strategy"]):
            chosen = data["strategy"] == strategy
            color, marker = strategy_style(strategy)
            sns.scatterplot(
                x=a[chosen], y=b[chosen], ax=ax, color=color, marker=marker, s=55, edgecolor="white"
            )
        if len(data):
            ax.set_xscale("log")
            ax.set_yscale("log")
            low = min(a.min(), b.min()) / 1.5
            high = max(a.max(), b.max()) * 1.5
            line = np.geomspace(low, high, 10)
            ax.plot(line, line, color="#444", lw=1)
            ax.fill_between(line, line / threshold, line * threshold, color="#999", alpha=0.18, lw=0)
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            tidy_log_axis(ax, "x", decades_only=column == M.RELATIVE_ERROR)
            tidy_log_axis(ax, "y", decades_only=column == M.RELATIVE_ERROR)
        else:
            ax.text(0.5, 0.5, "nothing to draw", ha="center", va="center", transform=ax.transAxes)
        if hidden:
            ax.text(
                0.02,
                0.98,
                f"{hidden} cell(s) below the meter's resolution: not drawn",
                transform=ax.transAxes,
                ha="left",
                va="top",
                fontsize=8,
                color="#444",
            )
        ax.set_xlabel(f"A: {label}")
        ax.set_ylabel(f"B: {label}\n(below the diagonal: B is better)")
        ax.set_title(label.split(" [")[0])
    fig.suptitle(
        f"B against A, one point per shared cell (grey band: within ×{threshold:g})",
        x=0.01,
        ha="left",
        y=1.0,
    )
    fig.tight_layout()
    strategy_legend(fig, order_strategies(shared["strategy"]), loc="center left", bbox_to_anchor=(1.0, 0.5))
    name = "compare"
    caption = (
        "Each point a cell both runs measured; on the diagonal B equals A, below it B is faster, leaner or "
        f"more accurate; the grey band is ×{threshold:g} either way. Memory below the meter's resolution is "
        "not drawn."
    )
    return [Made(name, "B against A", caption, save(fig, out, name, formats))]
