"""Verdicts: a cell's measured answer against the oracle's, into a status and metrics.

The oracle's answer for a cell comes from :class:`OracleJob`, which runs in a worker process
like the measurement (a problem whose ``build()`` or ``f`` hangs is stopped by the cell's
``--timeout``, never hangs the run) and answers from the fingerprint-keyed disk cache
(:mod:`.oracle_cache`) where it can. A cached answer may make a cell ok; it may never alone
make a claimed-exact cell wrong: :func:`needs_fresh_oracle` says when the runner must
recompute the oracle and judge again.
"""

from __future__ import annotations

import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from deqbench.harness.accuracy import relative_errors
from deqbench.harness.cell import CellSpec, build_problem
from deqbench.harness.measure import MEASURED, Measurement, failure_status, one_line
from deqbench.harness.results import Metric
from deqbench.harness.server import Stopped
from deqbench.harness.status import Status


@dataclass
class OracleResult:
    """The oracle's answer as plain data (it comes back from a worker process)."""

    values: dict[str, np.ndarray] = field(default_factory=dict)
    error_estimate: dict[str, float] = field(default_factory=dict)
    method: str = ""
    cached: bool = False
    error: str = ""  # one line, when the oracle could not answer
    error_status: str = ""
    warnings: list[str] = field(default_factory=list)  # the cache's, to repeat in the parent


@dataclass(frozen=True)
class OracleJob:
    """A worker job: the oracle's answer to the spec's query, on a CPU copy of its instance."""

    spec: CellSpec
    refresh: bool = False
    #: The cache folder, as the parent sees it when it makes the job (the worker server
    #: started with an environment that may be older); None: the worker's own default.
    cache_dir: str | None = None

    def __call__(self) -> OracleResult:
        from deqbench.harness.oracle_cache import OracleCache, OracleCacheWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OracleCacheWarning)
            try:
                problem = build_problem(self.spec, device="cpu")
                answer = OracleCache(self.cache_dir).answer(problem, self.spec.query, refresh=self.refresh)
            except Exception as error:  # noqa: BLE001 - an oracle that cannot answer is reported
                traceback.print_exc()
                return OracleResult(error=one_line(error), error_status=failure_status(error))
        return OracleResult(
            values={k: v.detach().to("cpu", torch.float64).numpy() for k, v in answer.values.items()},
            error_estimate={k: float(v) for k, v in answer.error_estimate.items()},
            method=answer.method,
            cached=answer.cached,
            warnings=[str(w.message) for w in caught if issubclass(w.category, OracleCacheWarning)],
        )

    def pass_on_warnings(self, result) -> None:
        """Warn in this process what the job warned in its own (a rebuilt cache entry)."""
        from deqbench.harness.oracle_cache import OracleCacheWarning

        for message in getattr(result, "warnings", ()):
            warnings.warn(message, OracleCacheWarning, stacklevel=2)


@dataclass
class Verdict:
    status: Status
    message: str = ""
    oracle_method: str = ""
    metrics: list[Metric] = field(default_factory=list)


def is_diverged(measurement: Measurement) -> bool:
    totals = measurement.solver_totals
    return not all(totals.get(f"{phase}_converged", 1.0) for phase in ("forward", "backward"))


def judge(measurement: Measurement, oracle: OracleResult | Stopped | None, tol: float) -> Verdict:
    """The cell's verdict: its measurement (or why there is none) against the oracle's answer."""
    if measurement.status != MEASURED:  # unsupported, error, oom, timeout, killed
        return Verdict(Status(measurement.status), measurement.message)
    metrics = measurement_metrics(measurement)
    problem = oracle_problem(oracle)
    errors = {}
    if problem is None:
        try:
            errors = relative_errors(
                {k: torch.from_numpy(v) for k, v in measurement.values.items()},
                {k: torch.from_numpy(v) for k, v in oracle.values.items()},
            )
        except (KeyError, ValueError) as error:  # outputs or shapes unlike the oracle's
            problem = (Status.ERROR, f"oracle: {one_line(error)}")
    if errors:
        metrics = accuracy_metrics(errors, oracle.error_estimate) + metrics
    method = oracle.method if errors else ""
    if is_diverged(measurement):
        return Verdict(Status.DIVERGED, divergence_message(measurement), method, metrics)
    if problem is not None:
        return Verdict(*problem, "", metrics)
    worst = max(errors, key=errors.get)
    if not errors[worst] <= tol:  # NaN is wrong too
        message = f"relative error {errors[worst]:.3g} in {worst} > tol {tol:g}"
        return Verdict(Status.WRONG, message, method, metrics)
    return Verdict(Status.OK, "", method, metrics)


def oracle_problem(oracle: OracleResult | Stopped | None) -> tuple[Status, str] | None:
    """(status, message) when there is no oracle answer to judge against, else None."""
    if isinstance(oracle, Stopped):
        return oracle.status, f"oracle: {oracle.message}"
    if oracle is None:
        return Status.ERROR, "oracle: no answer"
    if oracle.error:
        return Status(oracle.error_status or Status.ERROR), f"oracle: {oracle.error}"
    return None


def needs_fresh_oracle(verdict: Verdict, oracle: OracleResult | Stopped | None, claimed_exact: bool) -> bool:
    """A claimed-exact cell about to be called wrong on a cached answer: recompute first."""
    return (
        claimed_exact
        and verdict.status == Status.WRONG
        and isinstance(oracle, OracleResult)
        and oracle.cached
    )


def divergence_message(measurement: Measurement) -> str:
    totals = measurement.solver_totals
    phases = [p for p in ("forward", "backward") if not totals.get(f"{p}_converged", 1.0)]
    return "; ".join(
        f"{p} solve did not converge (residual {totals[f'{p}_max_residual']:.3g} "
        f"after {int(totals[f'{p}_iterations'])} iterations)"
        for p in phases
    )


def accuracy_metrics(errors: dict[str, float], estimates: dict[str, float]) -> list[Metric]:
    """relative_error per output and its max; the oracle's own error estimate likewise."""
    metrics = [Metric("relative_error", value, "rel", name) for name, value in errors.items()]
    metrics.append(Metric("relative_error", max(errors.values()), "rel"))
    metrics += [Metric("oracle_error_estimate", float(v), "rel", name) for name, v in estimates.items()]
    if estimates:
        metrics.append(Metric("oracle_error_estimate", max(map(float, estimates.values())), "rel"))
    return metrics


SOLVER_METRICS = {
    "solves": "count",
    "iterations": "count",
    "nfev": "count",
    "max_residual": "rel",
    "converged": "bool",
}


def measurement_metrics(measurement: Measurement) -> list[Metric]:
    metrics = [
        Metric("time_median", measurement.time_median, "s"),
        Metric("time_iqr", measurement.time_iqr, "s"),
        Metric(measurement.memory_metric, measurement.peak_bytes, "B"),
        Metric("saved_tensor_bytes", measurement.saved_bytes, "B"),
    ]
    for phase in ("forward", "backward"):
        for name, unit in SOLVER_METRICS.items():
            key = f"{phase}_{name}"
            metrics.append(Metric(key, float(measurement.solver_totals.get(key, float("nan"))), unit))
    metrics.append(Metric("repeats", len(measurement.times), "count"))
    return metrics
