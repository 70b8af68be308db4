"""What ``deqbench report`` and ``deqbench compare`` read: rows in, one cell-level table out.

Inputs are run folders (``deqbench run --out DIR``, read with :class:`RunFolder`) or files
written by ``deqbench export`` (``.csv`` or ``.parquet``), one or several, concatenated.
The tidy rows (one per cell and metric, :data:`results.COLUMNS`) become one row per
measured cell: its identity, the knobs parsed from ``size``, its settings, status, verdict
and the metrics reports plot (worst relative error, time, memory, iterations).

Nothing here imports matplotlib or seaborn.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.rows import COLUMNS, missing_columns, normalise
from deqbench.harness.results.run_folder import RUN_FILE, RunFolder, UnreadableRun
from deqbench.harness.results.status import FAILED_VERIFICATION, UNVERIFIED, Status

#: Cell-level metrics copied into the cell table (rows with an empty ``output``).
CELL_METRICS = (
    M.RELATIVE_ERROR,
    M.TIME_MEDIAN,
    M.TIME_IQR,
    M.PEAK_RSS_BYTES,
    M.CUDA_PEAK_BYTES,
    M.SAVED_TENSOR_BYTES,
    M.FORWARD_ITERATIONS,
    M.BACKWARD_ITERATIONS,
    M.REPEATS,
    M.CELL_WALL_TIME,
)
#: Settings that, when they differ between rows, make separate series in a figure.
SETTING_COLUMNS = (
    "device",
    "dtype",
    "f_solver",
    "b_solver",
    "f_tol",
    "b_tol",
    "f_max_iter",
    "b_max_iter",
    "threads",
)
#: Run metadata reported per run.
METADATA_COLUMNS = (
    "run_id",
    "deqbench_version",
    "torch_version",
    "numpy_version",
    "python_version",
    "git_commit",
    "device",
    "device_name",
    "dtype",
    "threads",
    "host",
)
NUMERIC_COLUMNS = ("value", "tol", "f_tol", "b_tol", "f_max_iter", "b_max_iter", "seed", "threads")

# Verdicts of one cell (what a reader needs to know about its answer).
VERDICT_OK = "ok"
VERDICT_FAILED = "failed"  # claimed exact, and wrong, diverged or raised
VERDICT_NOT_CLAIMED = "wrong, not claimed"  # wrong/diverged/raised on a query not claimed exact
VERDICT_STOPPED = "stopped"  # timeout, oom or killed: never checked
VERDICT_UNSUPPORTED = "unsupported"


class ReportInputError(ValueError):
    """Bad input to a report or comparison: one line for the user."""


# ------------------------------------------------------------------ loading
def load_rows(path: str | os.PathLike) -> pd.DataFrame:
    """The tidy rows of one run folder or exported file, with a ``source`` column."""
    path = Path(path)
    accepted = "accepted: a folder made by deqbench run, or a .csv/.parquet file from deqbench export"
    if path.is_dir():
        folder = RunFolder(path)
        if not folder.exists():
            raise ReportInputError(f"{path}: a folder with no {RUN_FILE}; {accepted}")
        try:
            folder.load()
        except UnreadableRun as error:
            raise ReportInputError(str(error)) from None
        rows = folder.read()
    elif path.is_file():
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ReportInputError(f"{path}: not a run folder nor a .csv/.parquet export; {accepted}")
        rows = read_export(path, suffix)
    else:
        raise ReportInputError(f"{path}: no such file or folder; {accepted}")
    if rows.empty:
        raise ReportInputError(f"{path}: no finished cells to report")
    rows = rows.copy()
    rows["source"] = str(path)
    return rows


def read_export(path: Path, suffix: str) -> pd.DataFrame:
    try:
        if suffix == ".parquet":
            rows = pd.read_parquet(path)
        else:
            text = [c for c in COLUMNS if c not in NUMERIC_COLUMNS and c != "expected_exact"]
            rows = pd.read_csv(
                path,
                dtype={c: str for c in text},
                keep_default_na=False,
                na_values={c: ["", "nan", "NaN"] for c in NUMERIC_COLUMNS},
            )
            if "expected_exact" in rows:
                rows["expected_exact"] = rows["expected_exact"].astype(str).str.lower().eq("true")
    except Exception as error:  # noqa: BLE001 - pandas and pyarrow raise many kinds on a bad file
        raise ReportInputError(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    missing = missing_columns(rows)
    if missing:
        raise ReportInputError(
            f"{path}: not a deqbench export (missing columns {', '.join(missing[:4])}); "
            "accepted: a .csv/.parquet file from deqbench export"
        )
    try:
        steps = rows["step"].astype("int64") if "step" in rows else None  # a training run's export
        rows = normalise(rows)
        return rows if steps is None else rows.assign(step=steps.values)
    except (ValueError, TypeError) as error:
        raise ReportInputError(f"{path}: malformed rows ({error})") from None


def load_many(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Rows of every input, concatenated (each keeps its ``source``)."""
    if not paths:
        raise ReportInputError("no results given; accepted: run folders or .csv/.parquet exports")
    return pd.concat([load_rows(p) for p in paths], ignore_index=True)


# --------------------------------------------------------------------- sizes
def parse_size(text: str) -> dict[str, Any]:
    """``"m=64,n=3,rho=0.8"`` -> ``{"m": 64, "n": 3, "rho": 0.8}`` (numbers where they parse)."""
    knobs: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in str(text).split(","))):
        key, _, value = item.partition("=")
        knobs[key.strip()] = number(value.strip())
    return knobs


def number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def base_cell(cell_id: str) -> str:
    """A cell id without a sweep's variant: ``analytic/tanh/jvp@m=64`` -> ``analytic/tanh/jvp``."""
    return str(cell_id).split("@", 1)[0]


def varying_knobs(cells: pd.DataFrame) -> list[str]:
    """The size knobs whose value differs between the cells given, in their size-string order."""
    seen: dict[str, set] = {}
    for knobs in cells["knobs"]:
        for key, value in knobs.items():
            seen.setdefault(key, set()).add(value)
    keys = [k for k, values in seen.items() if len(values) > 1]
    # a knob some cells lack also varies
    keys += [k for k in seen if k not in keys and any(k not in knobs for knobs in cells["knobs"])]
    return keys


def varying_settings(cells: pd.DataFrame, columns=SETTING_COLUMNS) -> list[str]:
    """Settings that differ between cells of one strategy and query (between runs, say).

    Settings that differ only from strategy to strategy (each strategy's own default
    solver) are the strategy's, not a condition of the run, and are not listed.
    """
    if cells.empty:
        return []
    groups = cells.groupby(["strategy", "query"])
    return [c for c in columns if (groups[c].nunique(dropna=False) > 1).any()]


# ------------------------------------------------------------- cell table
def verdict(status: str, expected_exact: bool) -> str:
    if status == Status.OK:
        return VERDICT_OK
    if status == Status.UNSUPPORTED:
        return VERDICT_UNSUPPORTED
    if status in UNVERIFIED:
        return VERDICT_STOPPED
    if status in FAILED_VERIFICATION:
        return VERDICT_FAILED if expected_exact else VERDICT_NOT_CLAIMED
    return VERDICT_STOPPED


def cell_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, run, cell): identity, knobs, settings, verdict and metrics.

    ``relative_error`` is the worst over the cell's outputs (the row with no output);
    ``worst_output`` names the output it comes from; ``peak_memory`` is the CUDA
    allocator's peak where there is one, else the peak resident set over the baseline
    (``memory_metric`` says which).
    """
    if "source" not in rows:
        rows = rows.assign(source="")
    key = ["source", "run_id", "cell"]
    identity = [
        "strategy",
        "problem",
        "query",
        "preset",
        "size",
        "status",
        "expected_exact",
        "message",
        "tol",
        "oracle_method",
        "seed",
        "timestamp",
        *METADATA_COLUMNS[1:],
        *SETTING_COLUMNS,
        *(["parallel_cells"] if "parallel_cells" in rows else []),  # cells at once (--jobs)
    ]
    identity = list(dict.fromkeys(c for c in identity if c not in key))
    cells = rows.drop_duplicates(key)[key + identity].reset_index(drop=True)
    level = rows[rows["metric"].isin(CELL_METRICS) & (rows["output"] == "")]
    wide = level.pivot_table(index=key, columns="metric", values="value", aggfunc="first")
    cells = cells.merge(wide.reset_index(), on=key, how="left")
    for metric in CELL_METRICS:
        if metric not in cells:
            cells[metric] = math.nan
    per_output = rows[(rows["metric"] == M.RELATIVE_ERROR) & (rows["output"] != "")]
    if len(per_output):
        worst = per_output.loc[per_output.groupby(key)["value"].idxmax(), [*key, "output"]]
        cells = cells.merge(worst.rename(columns={"output": "worst_output"}), on=key, how="left")
    else:
        cells["worst_output"] = ""
    cells["worst_output"] = cells["worst_output"].fillna("")
    cuda = cells[M.CUDA_PEAK_BYTES].notna() & cells["device"].astype(str).str.startswith("cuda")
    cells["peak_memory"] = cells[M.CUDA_PEAK_BYTES].where(cuda, cells[M.PEAK_RSS_BYTES])
    cells["memory_metric"] = [str(M.CUDA_PEAK_BYTES if c else M.PEAK_RSS_BYTES) for c in cuda]
    cells["times"] = repeat_times(rows, cells, key)
    cells["base_cell"] = cells["cell"].map(base_cell)
    cells["knobs"] = cells["size"].map(parse_size)
    cells["verdict"] = [
        verdict(s, bool(e)) for s, e in zip(cells["status"], cells["expected_exact"], strict=True)
    ]
    return cells


def repeat_times(rows: pd.DataFrame, cells: pd.DataFrame, key: list[str]) -> list[tuple[float, ...]]:
    """Each cell's timed repeats in order (``time_repeat`` rows); () where the rows have none
    (files written before each repeat was kept: noise tests then use the median and IQR)."""
    repeats = rows[rows["metric"] == M.TIME_REPEAT]
    if repeats.empty:
        return [()] * len(cells)
    order = pd.to_numeric(repeats["output"], errors="coerce")
    ordered = repeats.assign(order=order).sort_values("order", kind="stable")
    found = ordered.groupby(key, sort=False)["value"].agg(tuple)
    index = pd.MultiIndex.from_frame(cells[key])
    return [found.get(k, ()) for k in index]


def with_knob_columns(cells: pd.DataFrame, knobs: list[str]) -> pd.DataFrame:
    """The cells with one column per knob (``knob:m`` ...), for plotting against them."""
    cells = cells.copy()
    for knob in knobs:
        cells[f"knob:{knob}"] = cells["knobs"].map(lambda k, knob=knob: k.get(knob, math.nan))
    return cells


def condition_label(cells: pd.DataFrame, columns: list[str]) -> pd.Series:
    """``"batch=8, f_max_iter=15"``: the values of ``columns`` (knob:... or settings) per cell."""
    if not columns:
        return pd.Series([""] * len(cells), index=cells.index)

    def label(row) -> str:
        parts = []
        for column in columns:
            name = column.removeprefix("knob:")
            parts.append(f"{name}={format_value(row[column])}")
        return ", ".join(parts)

    return cells.apply(label, axis=1)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:g}"
    return str(value)


# --------------------------------------------------------------- metadata
def run_metadata(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (source, run): versions, device, dtype, threads, commit, host, when, cells."""
    columns = ["source", *METADATA_COLUMNS]
    groups = rows.groupby(["source", "run_id"], sort=False)
    meta = groups[list(METADATA_COLUMNS[1:])].first().reset_index()
    meta["cells"] = groups["cell"].nunique().values
    meta["sizes"] = groups["size"].agg(lambda s: "; ".join(dict.fromkeys(s))).values
    meta["started"] = groups["timestamp"].min().values
    return meta[[*columns, "cells", "sizes", "started"]]


def strategies_present(cells: pd.DataFrame) -> list[str]:
    return sorted(cells["strategy"].unique())
