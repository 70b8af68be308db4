"""A run's folder on disk: its settings, one parquet file per finished cell, and a lock.

::

    run.json                       the run's settings and planned cells (what --resume reads)
    cells/<safe cell id>.parquet   one file per finished cell, written atomically
    logs/<safe cell id>.log        a cell worker's output, kept only when it printed something
    .lock                          held (flock) while a run or a resume writes here

A cell file that is truncated, unreadable, of another run or of a cell this run did not
plan is skipped with a warning naming it: it is never read as a result, and a resume
computes that cell again. Cell files are named by :func:`~.rows.safe_name`, unique to each
cell id; files named as older deqbench named them (where two ids could share a name) are
still read.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from deqbench.harness.results.files import write_atomically
from deqbench.harness.results.rows import COLUMNS, legacy_safe_name, missing_columns, normalise, safe_name

RUN_FILE = "run.json"
CELLS_DIR = "cells"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"
#: run.json's format; 2: settings as given (RunSettings' fields), derived values recomputed.
RUN_FORMAT = 2


class RunFolderWarning(UserWarning):
    """A file in a run folder that is not read as a result (the message names it)."""


class FolderInUse(RuntimeError):
    """Another process holds the folder's lock (one line for the user)."""


class UnreadableRun(ValueError):
    """run.json is missing, malformed or of another format (one line for the user)."""


class RunFolder:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)  # as given, for messages; files are addressed absolutely
        self.root = self.path.absolute()
        self._planned: dict[str, Any] | None = None

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

    def make_folders(self) -> None:
        """The cells and logs folders, made again where someone removed them (a folder
        copied without its logs must still take new cells)."""
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(exist_ok=True)

    # ------------------------------------------------------------ run.json
    def create(self, run: dict[str, Any]) -> None:
        """Make the folder and write run.json (call with the lock held)."""
        self.make_folders()
        write_atomically(self.run_file, json.dumps({"format": RUN_FORMAT, **run}, indent=2).encode())

    def load(self) -> dict[str, Any]:
        """run.json, checked: raises UnreadableRun with one line."""
        try:
            run = json.loads(self.run_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnreadableRun(f"unreadable {self.run_file} ({type(error).__name__}: {error})") from None
        if not isinstance(run, dict) or run.get("format") != RUN_FORMAT:
            found = run.get("format") if isinstance(run, dict) else type(run).__name__
            raise UnreadableRun(
                f"{self.run_file} has format {found!r}; this deqbench reads format {RUN_FORMAT}"
            )
        for key, kind in (("run_id", str), ("settings", dict), ("cells", list)):
            if not isinstance(run.get(key), kind):
                raise UnreadableRun(f"{self.run_file} has no valid {key!r}")
        return run

    # ---------------------------------------------------------------- lock
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder's lock for writing; FolderInUse if another process holds it.

        flock is released by the kernel when its holder dies, however it dies, so a killed
        run never leaves a stale lock behind.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole block
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise FolderInUse(
                    f"{self.path} is being written by {holder}; wait for it to finish, "
                    "or choose another --out"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"deqbench (pid {os.getpid()})")
            handle.flush()
            yield
        finally:
            handle.close()

    # --------------------------------------------------------------- cells
    def cell_path(self, cell_id: str) -> Path:
        return self.cells_dir / f"{safe_name(cell_id)}.parquet"

    def log_path(self, cell_id: str) -> Path:
        return self.logs_dir / f"{safe_name(cell_id)}.log"

    def cell_files(self) -> list[Path]:
        return sorted(self.cells_dir.glob("*.parquet")) if self.cells_dir.is_dir() else []

    def remove_partial_files(self) -> None:
        """Temp files left by a run killed mid-write."""
        for leftover in self.cells_dir.glob("*.tmp"):
            leftover.unlink(missing_ok=True)

    def write_cell(self, cell_id: str, rows: pd.DataFrame) -> Path:
        path = self.cell_path(cell_id)
        write_atomically(path, rows.to_parquet(index=False))
        return path

    def valid_cells(self) -> Iterator[pd.DataFrame]:
        """Each readable cell file of this run, as rows; the others skipped with a warning."""
        run = self.load()
        planned, seen = set(run["cells"]), set()
        for path in self.cell_files():
            try:
                rows = pd.read_parquet(path)
            except Exception as error:  # noqa: BLE001 - pyarrow raises many kinds on a bad file
                skip(path, f"unreadable ({type(error).__name__})")
                continue
            reason = foreign_reason(rows, path, run["run_id"], planned)
            if not reason and rows["cell"].iloc[0] in seen:
                reason = f"a second file of cell {rows['cell'].iloc[0]!r}"
            if reason:
                skip(path, reason)
                continue
            seen.add(rows["cell"].iloc[0])
            yield rows

    def finished(self) -> set[str]:
        """Ids of the cells whose file is complete and this run's."""
        return {rows["cell"].iloc[0] for rows in self.valid_cells()}

    def read(self) -> pd.DataFrame:
        """Every finished cell's rows in one frame, cells in the run's planned order."""
        frames = list(self.valid_cells())
        if not frames:
            return normalise(pd.DataFrame(columns=COLUMNS))
        rows = pd.concat(frames, ignore_index=True)
        order = {cell: index for index, cell in enumerate(self.load()["cells"])}
        position = rows["cell"].map(lambda cell: order.get(cell, len(order)))
        return rows.iloc[position.argsort(kind="stable")].reset_index(drop=True)


def foreign_reason(rows: pd.DataFrame, path: Path, run_id: str, planned: set[str]) -> str:
    """Why a readable cell file is not one of this run's cells ("" when it is)."""
    missing = missing_columns(rows)
    if missing or rows.empty:
        return f"not a deqbench cell file (missing columns {', '.join(missing[:3]) or 'rows'})"
    cells = set(rows["cell"])
    if len(cells) != 1:
        return f"holds {len(cells)} cells, not one"
    (cell,) = cells
    if set(rows["run_id"]) != {run_id}:
        return f"belongs to another run ({', '.join(sorted(set(rows['run_id'])))})"
    if cell not in planned or path.stem not in (safe_name(cell), legacy_safe_name(cell)):
        return f"cell {cell!r} is not one this run planned under that name"
    return ""


def skip(path: Path, reason: str) -> None:
    warnings.warn(f"skipping {path}: {reason}", RunFolderWarning, stacklevel=3)
