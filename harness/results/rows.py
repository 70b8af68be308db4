"""Results: tidy rows, one per (cell, metric), and the run metadata they carry.

(The run folder that holds them, one parquet file per finished cell, is :mod:`.run_folder`.)
Each row is one (cell, metric) pair: ``metric``, ``value`` (a float), ``unit`` and
``output`` (the output tensor for per-output metrics such as ``relative_error``, else
empty), with the cell's identity, status and the run's metadata repeated on every row, so
any subset of rows stands on its own in pandas.
"""

from __future__ import annotations

import platform
import re
import socket
import subprocess
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from deqbench.harness.results.status import FAILED_VERIFICATION, UNVERIFIED

#: Column order of every row; ``value`` is float, ``expected_exact`` bool, ``threads`` int.
COLUMNS = [
    "run_id",
    "cell",
    "strategy",
    "backend",
    "problem",
    "query",
    "preset",
    "size",
    "device",
    "dtype",
    "status",
    "expected_exact",
    "message",
    "metric",
    "value",
    "unit",
    "output",
    "oracle",
    "oracle_method",
    "tol",
    "f_solver",
    "b_solver",
    "f_tol",
    "b_tol",
    "f_max_iter",
    "b_max_iter",
    "peer",
    "peer_differences",
    "seed",
    "deqbench_version",
    "torch_version",
    "numpy_version",
    "jax_version",
    "jaxlib_version",
    "python_version",
    "git_commit",
    "device_name",
    "threads",
    "host",
    "timestamp",
]

#: Columns added after files were first written: a file without them is still read (empty).
#: ``peer``: the library and version a peer strategy runs ("" for deqbench's own);
#: ``peer_differences``: how its settings differ from deqbench's (its stopping rule...).
LATER_COLUMNS = ("peer", "peer_differences")


def missing_columns(frame: pd.DataFrame) -> list[str]:
    """The columns a row file must have and ``frame`` lacks."""
    return [c for c in COLUMNS if c not in frame.columns and c not in LATER_COLUMNS]


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    output: str = ""


def safe_name(cell_id: str) -> str:
    """A file name for a cell id: ``analytic/tanh/jvp`` -> ``analytic__tanh__jvp``."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", cell_id.replace("/", "__"))


def format_size(size: dict[str, Any]) -> str:
    """``{"m": 32, "batch": 16}`` -> ``"m=32,batch=16"``."""
    return ",".join(f"{key}={value}" for key, value in size.items())


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Sortable and unique: a UTC timestamp and a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


# ------------------------------------------------------------------ metadata
def git_commit() -> str:
    """The commit of the deqbench source tree, ``+dirty`` when it has local changes."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def run_metadata() -> dict[str, str]:
    """What the parent process knows about the software and machine of a run."""
    import numpy
    import torch

    from deqbench._version import __version__
    from deqbench.backends import jax_versions

    return {
        "deqbench_version": __version__,
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
        **jax_versions(),  # installed versions, read without importing JAX
        "python_version": platform.python_version(),
        "git_commit": git_commit(),
        "host": socket.gethostname(),
    }


# ---------------------------------------------------------------------- rows
def cell_rows(identity: dict[str, Any], metrics: Iterable[Metric]) -> pd.DataFrame:
    """Rows of one cell: its identity (every column but the metric ones) times its metrics."""
    records = [
        {**identity, "metric": m.name, "value": float(m.value), "unit": m.unit, "output": m.output}
        for m in metrics
    ]
    frame = pd.DataFrame.from_records(records, columns=COLUMNS)
    return normalise(frame)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed column order and dtypes, so every cell file has the same parquet schema."""
    frame = frame.reindex(columns=COLUMNS)
    frame["value"] = frame["value"].astype("float64")
    frame["expected_exact"] = frame["expected_exact"].astype(bool)
    for column in ("f_max_iter", "b_max_iter", "seed", "threads"):
        frame[column] = frame[column].astype("int64")
    for column in ("tol", "f_tol", "b_tol"):
        frame[column] = frame[column].astype("float64")
    text = [c for c in COLUMNS if frame[c].dtype == object]
    frame[text] = frame[text].fillna("").astype(str)
    return frame


# ---------------------------------------------------------------- cell-level views
def cell_statuses(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its identity, status, whether exact is claimed, and the message."""
    columns = ["cell", "strategy", "problem", "query", "status", "expected_exact", "message"]
    return rows[columns].drop_duplicates("cell").reset_index(drop=True)


def failed_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Cells that fail verification: claimed exact, and wrong, diverged or errored."""
    cells = cell_statuses(rows)
    return cells[cells["expected_exact"] & cells["status"].isin(FAILED_VERIFICATION)]


def unverified_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Claimed-exact cells stopped before they could be checked (timeout, oom, killed)."""
    cells = cell_statuses(rows)
    return cells[cells["expected_exact"] & cells["status"].isin(UNVERIFIED)]
