"""The run loop: every planned cell measured, judged and written before the next starts.

Each cell's jobs run in worker processes of their own (:mod:`.server`): first the
measurement (:class:`~deqbench.harness.measure.MeasureJob`), then the oracle's answer
(:class:`~deqbench.harness.verdicts.OracleJob`), both under one deadline, so that
``--timeout`` covers everything a cell costs. The verdict (:mod:`.verdicts`) is made here
and the cell's rows are written to the run folder at once (:mod:`.run_folder`): a killed
run loses only the cell in flight, and ``--resume`` finishes the rest.

Checks of user input happen before anything is written (:mod:`.settings`,
:func:`prepare_out`), and raise :class:`~deqbench.harness.settings.BadInput` with one line.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from deqbench.harness import results
from deqbench.harness.matrix import PlannedCell, plan
from deqbench.harness.measure import MEASURED, MeasureJob, Measurement, device_name
from deqbench.harness.progress import Reporter, SilentReporter
from deqbench.harness.references import resolve_class
from deqbench.harness.results import Metric
from deqbench.harness.run_folder import RUN_FILE, FolderInUse, RunFolder, UnreadableRun
from deqbench.harness.server import Stopped, deadline_after, run_job, worker_server
from deqbench.harness.settings import BadInput, RunSettings
from deqbench.harness.status import Status
from deqbench.harness.verdicts import OracleJob, Verdict, judge, needs_fresh_oracle


class RunAborted(RuntimeError):
    """The run cannot go on (its folder cannot be written); one line for the user."""


# ------------------------------------------------------------------ run folder
def prepare_out(out: str | os.PathLike | None) -> Path:
    """Where a new run goes, checked (not created): absent or empty, and creatable."""
    path = Path(out) if out is not None else Path("results") / results.new_run_id()
    if RunFolder(path).exists():
        raise BadInput(f"--out {path} already holds a run; finish it with --resume {path}, or choose another")
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


def create_run(settings: RunSettings, out: Path, planned: list[PlannedCell]) -> tuple[RunFolder, dict]:
    """Make the run folder and its run.json, under the folder's lock; nothing is left
    behind if that fails."""
    folder = RunFolder(out)
    run = {
        "run_id": results.new_run_id(),
        "created": results.utc_now(),
        "settings": settings.to_dict(),
        "cells": [p.cell.id for p in planned],
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
    """A new run's folder, made once its settings, folder and plan all check out."""
    path = prepare_out(out)
    planned = checked_plan(settings)
    return create_run(settings, path, planned)


def resume_settings(path: str | os.PathLike) -> tuple[RunSettings, RunFolder, dict[str, Any]]:
    """A run folder's settings, checked again (a strategy file may have moved since).

    The strategy and problem files that run.json names are the ones the resumed run runs.
    """
    folder = RunFolder(path)
    if not folder.exists():
        raise BadInput(f"--resume {path}: no {RUN_FILE} there; accepted: a folder made by deqbench run")
    try:
        run = folder.load()
        settings = RunSettings.from_dict(run["settings"])
    except UnreadableRun as error:
        raise BadInput(f"--resume {path}: {error}") from None
    except BadInput as error:
        raise BadInput(f"--resume {path}: {RUN_FILE} settings: {error}") from None
    return settings, folder, run


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
    settings: RunSettings, folder: RunFolder, run: dict[str, Any], reporter: Reporter | None = None
) -> pd.DataFrame:
    """Run every cell not yet in the folder, writing each as it finishes; all rows after.

    Raises BadInput when another process is writing the folder, RunAborted when a finished
    cell cannot be written (a full disk): the cells written so far are kept for --resume.
    """
    reporter = reporter or SilentReporter()
    planned_cells = checked_plan(settings)
    try:
        with folder.lock():
            folder.remove_partial_files()
            done = folder.finished()
            todo = [p for p in planned_cells if p.cell.id not in done]
            metadata = {**results.run_metadata(), **machine_defaults(settings)}
            cap = settings.memory_cap()
            for index, planned in enumerate(todo):
                reporter.started(planned, index, len(todo))
                rows = run_cell(planned, settings, run["run_id"], metadata, folder, cap)
                write_cell(folder, planned, rows, len(done) + index)
                reporter.finished(planned, rows["status"].iloc[0])
    except FolderInUse as error:
        raise BadInput(str(error)) from None
    return folder.read()


def write_cell(folder: RunFolder, planned: PlannedCell, rows: pd.DataFrame, finished_before: int) -> None:
    try:
        folder.write_cell(planned.cell.id, rows)
    except OSError as error:
        reason = "no space left on device" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise RunAborted(
            f"cannot write cell {planned.cell.id} to {folder.path}: {reason}; the {finished_before} "
            f"cells finished before it are kept: deqbench run --resume {folder.path}"
        ) from None


def run_cell(
    planned: PlannedCell,
    settings: RunSettings,
    run_id: str,
    metadata: dict[str, Any],
    folder: RunFolder,
    memory_cap: int | None = None,
) -> pd.DataFrame:
    """One cell's rows: unsupported at once, or measured and verified in worker processes."""
    start = time.perf_counter()
    if not planned.cell.supported:
        measurement = Measurement(Status.UNSUPPORTED, planned.cell.unsupported)
        verdict = judge(measurement, None, settings.verify_tol)
    else:
        log_path = folder.log_path(planned.cell.id)
        measurement, verdict = measure_and_judge(planned, settings, memory_cap, str(log_path))
        remove_if_empty(log_path)
    metrics = [*verdict.metrics, Metric("cell_wall_time", time.perf_counter() - start, "s")]
    if measurement.status == MEASURED:
        metrics.append(Metric("warmup", settings.warmup_runs, "count"))
    if measurement.device_name:  # what the worker saw; also the default for later cells
        metadata["device_name"], metadata["threads"] = measurement.device_name, measurement.threads
    return results.cell_rows(cell_identity(planned, settings, run_id, metadata, verdict), metrics)


def measure_and_judge(
    planned: PlannedCell, settings: RunSettings, memory_cap: int | None, log_path: str
) -> tuple[Measurement, Verdict]:
    """Measure, ask the oracle, judge; a claimed-exact cell about to be called wrong on a
    cached oracle answer is judged again against a freshly computed one."""
    worker_server()  # started (once, seconds) before the cell's clock starts
    deadline = deadline_after(settings.timeout)
    measurement = as_measurement(run_job(MeasureJob(planned.spec), deadline, memory_cap, log_path), settings)
    oracle = None
    if measurement.status == MEASURED:
        oracle = stopped_with_reason(
            run_job(OracleJob(planned.spec), deadline, memory_cap, log_path), settings
        )
    verdict = judge(measurement, oracle, settings.verify_tol)
    if needs_fresh_oracle(verdict, oracle, planned.cell.expected_exact):
        fresh = run_job(OracleJob(planned.spec, refresh=True), deadline, memory_cap, log_path)
        verdict = judge(measurement, stopped_with_reason(fresh, settings), settings.verify_tol)
    return measurement, verdict


def stopped_with_reason(outcome, settings: RunSettings):
    """A job's outcome, with a timeout's message naming --timeout and what it covers."""
    if isinstance(outcome, Stopped) and outcome.status == Status.TIMEOUT:
        return Stopped(
            Status.TIMEOUT,
            f"no result within --timeout {settings.timeout:g} s (building the problem, measuring "
            "and the oracle included); worker killed",
        )
    return outcome


def as_measurement(outcome, settings: RunSettings) -> Measurement:
    if isinstance(outcome, Stopped):
        stopped = stopped_with_reason(outcome, settings)
        return Measurement(stopped.status, stopped.message)
    return outcome


def cell_identity(
    planned: PlannedCell, settings: RunSettings, run_id: str, metadata: dict[str, Any], verdict: Verdict
) -> dict[str, Any]:
    """Every column of a cell's rows but the metric ones."""
    strategy_cls = resolve_class(planned.spec.strategy, "strategy")
    solver = planned.spec.solver_settings
    return {
        "run_id": run_id,
        "cell": planned.cell.id,
        "strategy": planned.cell.strategy,
        "problem": planned.cell.problem,
        "query": planned.cell.query,
        "preset": settings.preset,
        "size": results.format_size(planned.size),
        "device": settings.device,
        "dtype": settings.dtype,
        "status": str(verdict.status),
        "expected_exact": planned.cell.expected_exact,
        "message": verdict.message,
        "oracle_method": verdict.oracle_method,
        "tol": settings.verify_tol,
        "f_solver": solver.get("f_solver", strategy_cls.default_f_solver),
        "b_solver": solver.get("b_solver", strategy_cls.default_b_solver),
        **{key: solver[key] for key in ("f_tol", "b_tol", "f_max_iter", "b_max_iter")},
        "seed": settings.seed,
        **metadata,
        "timestamp": results.utc_now(),
    }


def machine_defaults(settings: RunSettings) -> dict[str, Any]:
    """Device name and threads for rows of cells no worker measured (unsupported, failed).

    On CUDA the name is left for the first worker to report: asking here would initialise
    CUDA in the parent for nothing.
    """
    name = device_name(torch.device("cpu")) if settings.device == "cpu" else ""
    return {"device_name": name, "threads": settings.threads or torch.get_num_threads()}


def remove_if_empty(path: Path) -> None:
    if path.exists() and path.stat().st_size == 0:
        path.unlink()
