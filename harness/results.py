"""Results: tidy rows, one parquet file per finished cell, and the run folder around them.

A run folder holds::

    run.json                  the run's settings and planned cells (what --resume reads)
    cells/<safe cell id>.parquet   one file per finished cell, written atomically
    logs/<safe cell id>.log   a cell worker's output, kept only when it printed something

Each row is one (cell, metric) pair: ``metric``, ``value`` (a float), ``unit`` and
``output`` (the output tensor for per-output metrics such as ``relative_error``, else
empty), with the cell's identity, status and the run's metadata repeated on every row, so
any subset of rows stands on its own in pandas.
"""

from __future__ import annotations

import json
import os
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

RUN_FILE = "run.json"
CELLS_DIR = "cells"
LOGS_DIR = "logs"
RUN_FORMAT = 1

#: Cell statuses. "ok", "wrong" and "diverged" cells were measured; the others were not.
OK, WRONG, UNSUPPORTED, DIVERGED, ERROR, TIMEOUT, OOM = (
    "ok",
    "wrong",
    "unsupported",
    "diverged",
    "error",
    "timeout",
    "oom",
)
STATUSES = (OK, WRONG, UNSUPPORTED, DIVERGED, ERROR, TIMEOUT, OOM)
#: Statuses that fail a run (exit code 1) when the strategy claims the query exact.
FAILING = (WRONG, DIVERGED, ERROR)

#: Column order of every row; ``value`` is float, ``expected_exact`` bool, ``threads`` int.
COLUMNS = [
    "run_id",
    "cell",
    "strategy",
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
    "oracle_method",
    "tol",
    "f_tol",
    "b_tol",
    "f_max_iter",
    "b_max_iter",
    "seed",
    "deqbench_version",
    "torch_version",
    "numpy_version",
    "python_version",
    "git_commit",
    "device_name",
    "threads",
    "host",
    "timestamp",
]


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

    import deqbench

    return {
        "deqbench_version": deqbench.__version__,
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
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


# ---------------------------------------------------------------- run folder
class RunFolder:
    """A run's folder on disk: settings in run.json, one parquet file per finished cell."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)  # as given, for messages; files are addressed absolutely
        self.root = self.path.absolute()

    @property
    def run_file(self) -> Path:
        return self.root / RUN_FILE

    @property
    def cells_dir(self) -> Path:
        return self.root / CELLS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.root / LOGS_DIR

    def exists(self) -> bool:
        return self.run_file.is_file()

    def create(self, run: dict[str, Any]) -> None:
        """Make the folder and write run.json (the folder must not already hold a run)."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)
        write_atomically(self.run_file, json.dumps({"format": RUN_FORMAT, **run}, indent=2).encode())

    def load(self) -> dict[str, Any]:
        run = json.loads(self.run_file.read_text())
        if run.get("format") != RUN_FORMAT:
            raise ValueError(f"{self.run_file} has format {run.get('format')!r}; expected {RUN_FORMAT}")
        return run

    def cell_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{safe_name(cell_id)}.parquet"

    def log_path(self, cell_id: str) -> Path:
        return self.logs_dir / f"{safe_name(cell_id)}.log"

    def finished(self) -> set[str]:
        """Ids of the cells whose file is complete (a killed write leaves only a temp file)."""
        if not self.cells_dir.is_dir():
            return set()
        frames = [pd.read_parquet(path, columns=["cell"]) for path in self.cell_files()]
        return {cell for frame in frames for cell in frame["cell"].unique()}

    def cell_files(self) -> list[Path]:
        return sorted(self.cells_dir.glob("*.parquet"))

    def remove_partial_files(self) -> None:
        """Temp files left by a run killed mid-write."""
        for leftover in self.cells_dir.glob("*.tmp"):
            leftover.unlink(missing_ok=True)

    def write_cell(self, cell_id: str, rows: pd.DataFrame) -> Path:
        path = self.cell_path(cell_id)
        temporary = path.with_name(path.name + ".tmp")
        rows.to_parquet(temporary, index=False)
        with open(temporary, "rb") as written:  # on disk before it takes the final name
            os.fsync(written.fileno())
        os.replace(temporary, path)
        return path

    def read(self) -> pd.DataFrame:
        """Every finished cell's rows in one frame, cells in the run's planned order."""
        frames = [pd.read_parquet(path) for path in self.cell_files()]
        if not frames:
            return normalise(pd.DataFrame(columns=COLUMNS))
        rows = pd.concat(frames, ignore_index=True)
        planned = self.load().get("cells", []) if self.exists() else []
        order = {cell: index for index, cell in enumerate(planned)}
        position = rows["cell"].map(lambda cell: order.get(cell, len(order)))
        return rows.iloc[position.argsort(kind="stable")].reset_index(drop=True)


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


# ---------------------------------------------------------------- cell-level views
def cell_statuses(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its identity, status, whether exact is claimed, and the message."""
    columns = ["cell", "strategy", "problem", "query", "status", "expected_exact", "message"]
    return rows[columns].drop_duplicates("cell").reset_index(drop=True)


def failed_cells(rows: pd.DataFrame) -> pd.DataFrame:
    """Cells that fail verification: claimed exact, and wrong, diverged or errored."""
    cells = cell_statuses(rows)
    return cells[cells["expected_exact"] & cells["status"].isin(FAILING)]
