"""A run folder's life cycle, for `deqbench run` and `deqbench train` alike: where a new run
goes (:func:`prepare_out`, checked before anything is written), its creation with run.json
(:func:`create_run`, under the folder's lock), what to do with a folder that already holds
a run (:func:`what_next`), which user files a resume would import and whether they need
trust (:func:`check_resume_imports`), and :class:`RunAborted` when a run's folder cannot be
written.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from deqbench.harness.options import BadInput
from deqbench.harness.references import file_digest, referenced_files
from deqbench.harness.results.rows import new_run_id, utc_now
from deqbench.harness.results.run_folder import RUN_FILE, FolderInUse, RunFolder, UnreadableRun


class RunAborted(RuntimeError):
    """The run cannot go on (its folder cannot be written); one line for the user."""


class UntrustedFiles(BadInput):
    """--resume would import code from outside its run folder, or code changed since the run
    started, and was not told to trust it (--trust)."""


#: run.json's record of the user files a run imports: absolute path -> sha256 at its start.
FILES_KEY = "files"


def prepare_out(out: str | os.PathLike | None) -> Path:
    """Where a new run goes, checked (not created): absent or empty, and creatable."""
    path = Path(out) if out is not None else Path("results") / new_run_id()
    if RunFolder(path).exists():
        next_step = what_next(RunFolder(path))
        raise BadInput(f"--out {path} already holds a run; {next_step}, or choose another --out")
    if path.exists() and not path.is_dir():
        raise BadInput(f"--out {path} is a file; accepted: a new or empty folder")
    if path.is_dir() and any(p.name != ".lock" for p in path.iterdir()):
        raise BadInput(f"--out {path} is not empty; accepted: a new or empty folder")
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"cannot create --out {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"cannot create --out {path}: {ancestor} is not writable")
    return path


def what_next(folder: RunFolder) -> str:
    """What to do with an existing run folder: report a complete one, resume the others."""
    try:
        planned, done = len(folder.load()["cells"]), len(folder.finished())
    except (UnreadableRun, KeyError, OSError):
        return f"finish it with --resume {folder.path}"
    if done >= planned:
        cells = f"{planned} cell" + ("" if planned == 1 else "s")
        report = f"deqbench report {folder.path} --out {folder.path}-report"
        return f"it is complete ({cells} finished): {report}, or deqbench show {folder.path}"
    return f"{done} of its {planned} cells are finished; finish it with --resume {folder.path}"


def create_run(settings, out: Path, cell_ids: list[str], **extra: Any) -> tuple[RunFolder, dict]:
    """Make the run folder and its run.json (``settings``: a run's or a training's, by their
    ``to_dict``; ``extra`` fields: a training run's ``kind``), under the folder's lock;
    nothing is left behind if that fails."""
    folder = RunFolder(out)
    run = {
        "run_id": new_run_id(),
        "created": utc_now(),
        **extra,
        "settings": settings.to_dict(),
        FILES_KEY: imported_file_hashes(settings.to_dict()),
        "cells": cell_ids,
    }
    existed = out.exists()
    try:
        with folder.lock():
            if folder.exists():  # another run took the folder since prepare_out looked
                raise BadInput(f"--out {out} already holds a run; finish it with --resume {out}")
            folder.create(run)
    except FolderInUse as error:
        raise BadInput(str(error)) from None
    except OSError as error:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise BadInput(f"cannot create --out {out}: {error.strerror or error}") from None
    return folder, run


def imported_file_hashes(settings: dict[str, Any]) -> dict[str, str | None]:
    """The strategy and problem files a run's settings name, with their sha256 now."""
    references = [*settings.get("strategies", []), *settings.get("problems", [])]
    return {str(path): file_digest(path) for path in referenced_files(references)}


def imported_files(folder: RunFolder, run: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(file, what makes it need trust) for each file a resume of ``run`` would import:
    lying outside the run folder, or changed since the run started (per run.json's hashes)."""
    recorded = run.get(FILES_KEY)
    files = []
    for path, digest in imported_file_hashes(run["settings"]).items():
        concerns = []
        if not Path(path).resolve().is_relative_to(folder.root.resolve()):
            concerns.append("outside the run folder")
        if isinstance(recorded, dict) and path in recorded and recorded[path] != digest:
            concerns.append("changed since the run started")
        files.append((path, concerns))
    return files


def check_resume_imports(folder: RunFolder, run: dict[str, Any], trust: bool, notify) -> None:
    """Tell (``notify``, one line each) which files a resume imports; UntrustedFiles when one
    lies outside the folder or changed since the run started and ``trust`` is False."""
    files = imported_files(folder, run)
    if files and not isinstance(run.get(FILES_KEY), dict):
        notify(f"{RUN_FILE} (an older deqbench) records no hashes: whether its files changed is unknown")
    for path, concerns in files:
        notify(f"--resume imports {path}" + (f" ({', '.join(concerns)})" if concerns else ""))
    doubtful = [path for path, concerns in files if concerns]
    if doubtful and not trust:
        raise UntrustedFiles(
            f"--resume {folder.path} would import code from {', '.join(doubtful)} (outside the run folder "
            "or changed since the run started); read it, then resume with --trust"
        )


def notify_on_stderr(line: str) -> None:
    print(line, file=sys.stderr)
