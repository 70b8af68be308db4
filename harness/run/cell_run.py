"""One cell of a run, start to finish: measured, the oracle asked, judged, made into rows.

Each job runs in a worker process of its own (:mod:`.server`): first the measurement
(:class:`~deqbench.harness.worker.measure.MeasureJob`), then the oracle's answer
(:class:`~deqbench.harness.run.verdicts.OracleJob`), each under its own deadline: ``--timeout``
covers building the problem and measuring the strategy, ``--oracle-timeout`` (by default the
same number of seconds) the oracles. An oracle's first answer on a large instance can cost
far more than any strategy (dense m x m work per sample), and is then cached; it must not be
charged to the strategy. The executors (:mod:`.executors`) call :func:`run_cell`, here or on
a Dask worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from deqbench.harness.oracle.cache import default_cache_dir
from deqbench.harness.references import resolve_class
from deqbench.harness.results import rows as results
from deqbench.harness.results.metrics import MetricName
from deqbench.harness.results.rows import Metric
from deqbench.harness.results.status import Status
from deqbench.harness.run.matrix import PlannedCell
from deqbench.harness.run.settings import RunSettings
from deqbench.harness.run.verdicts import OracleJob, Verdict, judge, judge_against, stale_oracles
from deqbench.harness.worker.measure import MEASURED, MeasureJob, Measurement, device_name
from deqbench.harness.worker.server import Stopped, deadline_after, run_job, worker_server

#: oracle_answer's default: the cache folder this process's environment names now.
LOCAL = object()


@dataclass
class CellContext:
    """What every cell of a run shares: its settings, run id, row metadata and memory cap."""

    settings: RunSettings
    run_id: str
    metadata: dict[str, Any]
    memory_cap: int | None


def run_cell(planned: PlannedCell, context: CellContext, log_path: str | None, oracles=None) -> pd.DataFrame:
    """One cell's rows: unsupported at once, or measured and verified in worker processes.

    ``oracles``: framework -> the oracle's answer, when an executor computed them once for
    every cell of the instance (a Dask run); None to compute them here, under
    ``--oracle-timeout``.
    """
    settings = context.settings
    start = time.perf_counter()
    if not planned.cell.supported:
        measurement = Measurement(Status.UNSUPPORTED, planned.cell.unsupported)
        verdict = judge(measurement, None, settings.verify_tol)
    else:
        measurement, verdict = measure_and_judge(planned, settings, context.memory_cap, log_path, oracles)
    metrics = [*verdict.metrics, Metric(MetricName.CELL_WALL_TIME, time.perf_counter() - start, "s")]
    if measurement.status == MEASURED:
        metrics.append(Metric(MetricName.WARMUP, settings.warmup_runs, "count"))
    metadata = context.metadata
    if measurement.device_name:  # what the worker saw; also the default for later cells
        metadata["device_name"], metadata["threads"] = measurement.device_name, measurement.threads
    return results.cell_rows(cell_identity(planned, settings, context.run_id, metadata, verdict), metrics)


def measure_and_judge(
    planned: PlannedCell, settings: RunSettings, memory_cap: int | None, log_path: str | None, oracles=None
) -> tuple[Measurement, Verdict]:
    """Measure, ask the oracles, judge; a claimed-exact cell about to be called wrong on a
    cached oracle answer is judged again against freshly computed ones."""
    worker_server()  # started (once, seconds) before the cell's clock starts
    deadline = deadline_after(settings.timeout)
    measurement = as_measurement(run_job(MeasureJob(planned.spec), deadline, memory_cap, log_path), settings)
    if measurement.status != MEASURED:
        return measurement, judge(measurement, None, settings.verify_tol)
    deadline = deadline_after(settings.oracle_budget)  # the oracles' own, refreshes included
    if oracles is None:
        oracles = oracle_answers(planned, settings, deadline, memory_cap, log_path)
    verdict = judge_against(measurement, oracles, settings.verify_tol)
    stale = stale_oracles(verdict, oracles, planned.cell.expected_exact)
    if stale:
        fresh = oracle_answers(
            planned, settings, deadline, memory_cap, log_path, refresh=True, frameworks=stale
        )
        verdict = judge_against(measurement, {**oracles, **fresh}, settings.verify_tol)
    return measurement, verdict


def oracle_answers(
    planned, settings, deadline, memory_cap, log_path, refresh=False, frameworks=None, cache_dir=LOCAL
):
    """framework -> the oracle's answer to a cell's query, for each of the run's oracles
    (or ``frameworks``), each in a worker process: an OracleResult or Stopped."""
    frameworks = settings.oracle_frameworks if frameworks is None else frameworks
    return {
        name: oracle_answer(planned, settings, deadline, memory_cap, log_path, refresh, cache_dir, name)
        for name in frameworks
    }


def oracle_answer(
    planned, settings, deadline, memory_cap, log_path, refresh=False, cache_dir=LOCAL, framework="torch"
):
    """One oracle's answer to a cell's query, in a worker process: an OracleResult or Stopped.

    ``cache_dir``: the oracle cache to use; by default this process's (its environment now).
    """
    if cache_dir is LOCAL:
        cache_dir = str(default_cache_dir())
    job = OracleJob(planned.spec, refresh=refresh, cache_dir=cache_dir, framework=framework)
    outcome = run_job(job, deadline, memory_cap, log_path)
    job.pass_on_warnings(outcome)
    return stopped_with_reason(outcome, settings, "oracle")


def stopped_with_reason(outcome, settings: RunSettings, job_kind: str):
    """A job's outcome, with a timeout's message naming the option and what it covers."""
    if isinstance(outcome, Stopped) and outcome.status == Status.TIMEOUT:
        return Stopped(Status.TIMEOUT, TIMEOUT_MESSAGES[job_kind].format(settings=settings))
    return outcome


#: What a timeout of each kind of job says; the oracle's is prefixed "oracle: " by the verdict.
TIMEOUT_MESSAGES = {
    "measure": "no result within --timeout {settings.timeout:g} s (building the problem and "
    "measuring); worker killed",
    "oracle": "no answer within --oracle-timeout {settings.oracle_budget:g} s (the oracles' own "
    "budget, by default --timeout's); worker killed",
}


def as_measurement(outcome, settings: RunSettings) -> Measurement:
    if isinstance(outcome, Stopped):
        stopped = stopped_with_reason(outcome, settings, "measure")
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
        "backend": strategy_cls.backend,
        "problem": planned.cell.problem,
        "query": planned.cell.query,
        "preset": settings.preset,
        "size": results.format_size(planned.size),
        "device": settings.device,
        "dtype": settings.dtype,
        "status": str(verdict.status),
        "expected_exact": planned.cell.expected_exact,
        "message": verdict.message,
        "oracle": settings.oracle,
        "oracle_method": verdict.oracle_method,
        "tol": settings.verify_tol,
        "f_solver": solver.get("f_solver", strategy_cls.default_f_solver),
        "b_solver": solver.get("b_solver", strategy_cls.default_b_solver),
        **{key: solver[key] for key in ("f_tol", "b_tol", "f_max_iter", "b_max_iter")},
        **peer_columns(strategy_cls, solver),
        "seed": settings.seed,
        **metadata,
        "timestamp": results.utc_now(),
    }


def peer_columns(strategy_cls, solver_settings: dict[str, Any]) -> dict[str, str]:
    """The library a peer runs and how its settings differ from ours ("" for our own)."""
    if strategy_cls.peer is None:
        return {"peer": "", "peer_differences": ""}
    return {"peer": strategy_cls.peer, "peer_differences": strategy_cls(**solver_settings).differences()}


def machine_defaults(settings: RunSettings) -> dict[str, Any]:
    """Device name and threads for rows of cells no worker measured (unsupported, failed).

    On CUDA the name is left for the first worker to report: asking here would initialise
    CUDA in the parent for nothing.
    """
    name = device_name(torch.device("cpu")) if settings.device == "cpu" else ""
    return {"device_name": name, "threads": settings.threads or torch.get_num_threads()}


def remove_if_empty(path: Path) -> None:
    """Drop a cell's log file when the cell printed nothing."""
    if path.exists() and path.stat().st_size == 0:
        path.unlink()


def stopped_cell_rows(
    planned: PlannedCell, context: CellContext, status: Status, message: str
) -> pd.DataFrame:
    """The rows of a cell that never came back (its executor lost it): recorded, not lost."""
    verdict = Verdict(status, message)
    metrics = [Metric(MetricName.CELL_WALL_TIME, float("nan"), "s")]
    identity = cell_identity(planned, context.settings, context.run_id, context.metadata, verdict)
    return results.cell_rows(identity, metrics)
