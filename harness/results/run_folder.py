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
import pyarrow as pa
import pyarrow.parquet as pq

from deqbench.harness.results.files import write_atomically
from deqbench.harness.results.rows import COLUMNS, LATER_COLUMNS, legacy_safe_name, normalise, safe_name

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

    def valid_cells(self) -> Iterator[tuple[str, pa.Table]]:
        """(cell id, its rows as an Arrow table) for each readable cell file of this run; the
        others skipped with a warning. Arrow, not pandas: a frame per file costs more than
        reading the file, and a folder may hold thousands."""
        run = self.load()
        planned, seen = set(run["cells"]), set()
        for path in self.cell_files():
            try:
                table = pq.ParquetFile(path).read()
            except Exception as error:  # noqa: BLE001 - pyarrow raises many kinds on a bad file
                skip(path, f"unreadable ({type(error).__name__})")
                continue
            reason, cell = foreign_reason(table, path, run["run_id"], planned)
            if not reason and cell in seen:
                reason = f"a second file of cell {cell!r}"
            if reason:
                skip(path, reason)
                continue
            seen.add(cell)
            yield cell, table

    def finished(self) -> set[str]:
        """Ids of the cells whose file is complete and this run's."""
        return {cell for cell, _ in self.valid_cells()}

    def read(self) -> pd.DataFrame:
        """Every finished cell's rows in one frame, cells in the run's planned order."""
        tables = [table for _, table in self.valid_cells()]
        if not tables:
            return normalise(pd.DataFrame(columns=COLUMNS))
        rows = concatenated(tables)
        order = {cell: index for index, cell in enumerate(self.load()["cells"])}
        position = rows["cell"].map(lambda cell: order.get(cell, len(order)))
        return rows.iloc[position.argsort(kind="stable")].reset_index(drop=True)


def concatenated(tables: list[pa.Table]) -> pd.DataFrame:
    """Cell files' tables as one frame; files of older formats (a column fewer, another
    type) are concatenated as pandas would."""
    try:
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pd.concat([table.to_pandas() for table in tables], ignore_index=True)


def foreign_reason(table: pa.Table, path: Path, run_id: str, planned: set[str]) -> tuple[str, str]:
    """(why a readable cell file is not one of this run's cells, "" when it is; its cell id)."""
    missing = [c for c in COLUMNS if c not in table.column_names and c not in LATER_COLUMNS]
    if missing or table.num_rows == 0:
        return f"not a deqbench cell file (missing columns {', '.join(missing[:3]) or 'rows'})", ""
    cells = set(table.column("cell").unique().to_pylist())
    if len(cells) != 1:
        return f"holds {len(cells)} cells, not one", ""
    (cell,) = cells
    if not isinstance(cell, str):
        return f"its cell id is {cell!r}, not text", ""
    run_ids = set(table.column("run_id").unique().to_pylist())
    if run_ids != {run_id}:
        return f"belongs to another run ({', '.join(sorted(map(str, run_ids)))})", cell
    if cell not in planned or path.stem not in (safe_name(cell), legacy_safe_name(cell)):
        return f"cell {cell!r} is not one this run planned under that name", cell
    return "", cell


def skip(path: Path, reason: str) -> None:
    warnings.warn(f"skipping {path}: {reason}", RunFolderWarning, stacklevel=3)
