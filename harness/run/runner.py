"""The run loop: new runs and resumes, and every planned cell written as it finishes.

An executor (:mod:`.executors`) runs the cells, each as :mod:`.cell_run` says (measured
and judged in worker processes of their own); this module writes each cell's rows to the
run folder at once, under its lock (:mod:`.run_folder`): a killed run loses only the
cells in flight, and ``--resume`` finishes the rest.

Checks of user input happen before anything is written (:mod:`.settings`,
:func:`prepare_out`), and raise :class:`~deqbench.harness.options.BadInput` with one line.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from deqbench.harness.options import BadInput
from deqbench.harness.oracle.cache import CacheDirectoryError, check_cache_dir, default_cache_dir
from deqbench.harness.references import file_digest, is_file_reference, referenced_files, resolve_class
from deqbench.harness.results import rows as results
from deqbench.harness.results.run_folder import RUN_FILE, FolderInUse, RunFolder, UnreadableRun
from deqbench.harness.run.cell_run import CellContext, machine_defaults
from deqbench.harness.run.executors import Executor, LocalExecutor
from deqbench.harness.run.matrix import PlannedCell, plan
from deqbench.harness.run.progress import Reporter, SilentReporter
from deqbench.harness.run.settings import RunSettings
from deqbench.harness.worker.cell import CellSpec, ProblemCheck
from deqbench.harness.worker.server import deadline_after, run_job
from deqbench.strategies.base import STRATEGIES


class RunAborted(RuntimeError):
    """The run cannot go on (its folder cannot be written); one line for the user."""


class UntrustedFiles(BadInput):
    """--resume would import code from outside its run folder, or code changed since the run
    started, and was not told to trust it (--trust)."""


#: run.json's record of the user files a run imports: absolute path -> sha256 at its start.
FILES_KEY = "files"


# ------------------------------------------------------------------ run folder
def prepare_out(out: str | os.PathLike | None) -> Path:
    """Where a new run goes, checked (not created): absent or empty, and creatable."""
    path = Path(out) if out is not None else Path("results") / results.new_run_id()
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
        cells = counted(planned, "cell", "cells")
        report = f"deqbench report {folder.path} --out {folder.path}-report"
        return f"it is complete ({cells} finished): {report}, or deqbench show {folder.path}"
    return f"{done} of its {planned} cells are finished; finish it with --resume {folder.path}"


def create_run(settings: RunSettings, out: Path, cell_ids: list[str], **extra: Any) -> tuple[RunFolder, dict]:
    """Make the run folder and its run.json (with ``extra`` fields: a training run's
    ``kind``), under the folder's lock; nothing is left behind if that fails."""
    folder = RunFolder(out)
    run = {
        "run_id": results.new_run_id(),
        "created": results.utc_now(),
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


def new_run(settings: RunSettings, out: str | os.PathLike | None) -> tuple[RunFolder, dict]:
    """A new run's folder, made once its settings, folder, plan and users' problems all
    check out."""
    path = prepare_out(out)
    check_oracle_cache()
    planned = checked_plan(settings)
    check_user_problems(planned, settings)
    return create_run(settings, path, [p.cell.id for p in planned])


def check_user_problems(planned: list[PlannedCell], settings: RunSettings) -> None:
    """BadInput when a problem from a user's file cannot be built, or its layer raises under
    a framework it declares and the run uses (each instance tried once, in a worker under
    --timeout; one stopped there is left to its cells). Shipped problems are tested already."""
    needs: dict[tuple, tuple[CellSpec, set[str]]] = {}
    for cell in planned:
        if is_file_reference(cell.spec.problem):
            key = (cell.spec.problem, tuple(sorted(cell.spec.overrides.items())))
            backends = needs.setdefault(key, (cell.spec, set(settings.oracle_frameworks)))[1]
            backends.add(resolve_class(cell.spec.strategy, "strategy").backend)
    for spec, backends in needs.values():
        outcome = run_job(ProblemCheck(spec, tuple(sorted(backends))), deadline_after(settings.timeout))
        if isinstance(outcome, str) and outcome:
            size = ",".join(f"{k}={v}" for k, v in spec.overrides.items()) or spec.preset
            raise BadInput(f"problem {spec.problem} ({size}): {outcome}")


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


def resume_settings(
    path: str | os.PathLike, trust: bool = False, notify=lambda line: None
) -> tuple[RunSettings, RunFolder, dict[str, Any]]:
    """A run folder's settings, checked again (a strategy file may have moved since).

    The strategy and problem files that run.json names are the ones the resumed run runs;
    each is named to ``notify`` before any is imported, and one outside the run folder or
    changed since the run started is imported only with ``trust`` (UntrustedFiles otherwise).
    """
    folder = RunFolder(path)
    if not folder.exists():
        raise BadInput(f"--resume {path}: no {RUN_FILE} there; accepted: a folder made by deqbench run")
    try:
        run = folder.load()
    except UnreadableRun as error:
        raise BadInput(f"--resume {path}: {error}") from None
    check_resume_imports(folder, run, trust, notify)
    check_oracle_cache()
    try:
        settings = RunSettings.from_dict(run["settings"])
    except BadInput as error:
        raise BadInput(f"--resume {path}: {RUN_FILE} settings: {error}") from None
    return settings, folder, run


def check_oracle_cache() -> None:
    """BadInput when the oracle cache's folder ($DEQBENCH_CACHE_DIR) is a file: every answer
    would be recomputed, silently."""
    try:
        check_cache_dir(default_cache_dir())
    except CacheDirectoryError as error:
        raise BadInput(str(error)) from None


def checked_plan(settings: RunSettings) -> list[PlannedCell]:
    """:func:`plan`, with a class that cannot even be loaded reported as bad input."""
    try:
        return plan(settings)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - a user's class failing to load
        raise BadInput(f"cannot build the matrix: {type(error).__name__}: {error}") from None


# ------------------------------------------------------------------- execution
def execute(
    settings: RunSettings,
    folder: RunFolder,
    run: dict[str, Any],
    reporter: Reporter | None = None,
    executor: Executor | None = None,
) -> pd.DataFrame:
    """Run every cell not yet in the folder, writing each as it finishes; all rows after.

    The executor (:mod:`.executors`: this machine, or a Dask cluster) runs the cells; this
    process writes each one as it arrives, under the folder's lock. Raises BadInput when
    another process is writing the folder, RunAborted when a finished cell cannot be written
    (a full disk): the cells written so far are kept for --resume.
    """
    reporter = reporter or SilentReporter()
    executor = executor or LocalExecutor()
    planned_cells = checked_plan(settings)
    try:
        with folder.lock():
            folder.make_folders()
            folder.remove_partial_files()
            done = folder.finished()
            todo = [p for p in planned_cells if p.cell.id not in done]
            parallel = getattr(executor, "parallel_cells", 0)
            reporter.plan(plan_line(planned_cells, todo, parallel))
            context = CellContext(
                settings,
                run["run_id"],
                {**results.run_metadata(), **machine_defaults(settings), "parallel_cells": parallel},
                settings.memory_cap(),
            )
            finished = executor.run_cells(
                todo, context, folder, lambda p, i: reporter.started(p, i, len(todo))
            )
            for index, (planned, rows) in enumerate(finished):
                write_cell(folder, planned, rows, len(done) + index)
                reporter.finished(planned, rows["status"].iloc[0])
    except FolderInUse as error:
        raise BadInput(str(error)) from None
    return folder.read()


#: Rough seconds of one quick-size cell on one CPU, by the strategy's backend: the mean
#: cell_wall_time of `make run` on a quiet 2-core machine (torch 0.6 s, JAX 1.8 s, the JAX
#: cells compiling their query), rounded up; the plan's estimate only, which the progress
#: line then corrects from the run's own pace.
SECONDS_PER_CELL = {"torch": 0.8, "jax": 2.2}


def plan_line(planned: list[PlannedCell], todo: list[PlannedCell], parallel: int) -> str:
    """One line before the first cell: how many cells, of which strategies x problems x
    queries, how many are left to run, how many at once, and a rough estimate of the time.

    ``parallel``: cells at once (0: the executor does not say, a cluster)."""
    strategies = dict.fromkeys(p.cell.strategy for p in planned)
    problems = dict.fromkeys((p.cell.problem, p.cell.variant) for p in planned)
    queries = dict.fromkeys(p.cell.query for p in planned)
    shape = " x ".join(
        counted(len(names), *nouns)
        for names, nouns in (
            (strategies, ("strategy", "strategies")),
            (problems, ("problem", "problems")),
            (queries, ("query", "queries")),
        )
    )
    refused = sum(not p.cell.supported for p in todo)
    parts = [f"plan: {len(planned)} cells ({shape})"]
    if len(todo) != len(planned):
        parts.append(f"{len(todo)} left to run")
    if refused:
        parts.append(f"{refused} unsupported by their strategy")
    if parallel:
        parts.append(f"{parallel} at a time" if parallel > 1 else "one at a time")
        parts.append(f"estimate about {estimate_minutes(todo, parallel)} (quick-size cells)")
    return ", ".join(parts)


def counted(count: int, singular: str, plural: str) -> str:
    """1 problem, 3 strategies."""
    return f"{count} {singular if count == 1 else plural}"


def estimate_minutes(todo: list[PlannedCell], parallel: int) -> str:
    seconds = sum(
        SECONDS_PER_CELL.get(STRATEGIES.get(p.cell.strategy).backend, 1.0) for p in todo if p.cell.supported
    )
    minutes = seconds / parallel / 60
    return f"{minutes:.0f} min" if minutes >= 1 else "1 min"


def write_cell(folder: RunFolder, planned: PlannedCell, rows: pd.DataFrame, finished_before: int) -> None:
    try:
        folder.write_cell(planned.cell.id, rows)
    except OSError as error:
        reason = "no space left on device" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise RunAborted(
            f"cannot write cell {planned.cell.id} to {folder.path}: {reason}; the {finished_before} "
            f"cells finished before it are kept: deqbench run --resume {folder.path}"
        ) from None
