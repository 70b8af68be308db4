"""Verdicts: a cell's measured answer against the oracle's, into a status and metrics.

The oracle's answer for a cell comes from :class:`OracleJob`, which runs in a worker process
like the measurement (a problem whose ``build()`` or ``f`` hangs is stopped by the cell's
``--timeout``, never hangs the run) and answers from the fingerprint-keyed disk cache
(:mod:`.oracle_cache`) where it can. A cached answer may make a cell ok; it may never alone
make a claimed-exact cell wrong: :func:`stale_oracles` says which ones the runner must
recompute before judging again.

With ``--oracle both`` a cell is judged against two oracles that share no code (torch's and
JAX's, :func:`judge_against`): the first gives the main metrics, the second its own
``*_jax`` accuracy metrics, and the two oracles' disagreement is itself a metric, an error
when it exceeds :data:`ORACLES_AGREE_TOL`.
"""

from __future__ import annotations

import math
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from deqbench.harness.oracle.accuracy import relative_errors
from deqbench.harness.results.metrics import MetricName
from deqbench.harness.results.rows import Metric
from deqbench.harness.results.status import Status
from deqbench.harness.worker.cell import CellSpec, build_problem
from deqbench.harness.worker.measure import MEASURED, Measurement, failure_status, one_line
from deqbench.harness.worker.server import Stopped


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
    framework: str = "torch"  # whose oracle: torch's, or the independent JAX one

    def __call__(self) -> OracleResult:
        from deqbench.harness.oracle.cache import OracleCache, OracleCacheWarning

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", OracleCacheWarning)
            try:
                problem = build_problem(self.spec, device="cpu")
                answer = OracleCache(self.cache_dir).answer(
                    problem, self.spec.query, refresh=self.refresh, framework=self.framework
                )
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
        from deqbench.harness.oracle.cache import OracleCacheWarning

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


def stale_oracles(verdict: Verdict, oracles: dict[str, object], claimed_exact: bool) -> list[str]:
    """The oracles to recompute first: those that answered from the cache when a claimed-exact
    cell is about to be called wrong (or the oracles disagree)."""
    if not claimed_exact or verdict.status not in (Status.WRONG, Status.ERROR):
        return []
    return [name for name, oracle in oracles.items() if isinstance(oracle, OracleResult) and oracle.cached]


#: Two float64 oracles that share no code must agree this closely (relative), or neither's
#: verdict is trusted.
ORACLES_AGREE_TOL = 1e-10
ACCURACY_METRICS = (MetricName.RELATIVE_ERROR, MetricName.ORACLE_ERROR_ESTIMATE)


def judge_against(measurement: Measurement, oracles: dict[str, object], tol: float) -> Verdict:
    """The verdict against each oracle (the first one's is the main one) and their agreement."""
    (first, first_oracle), *others = oracles.items()
    verdict = judge(measurement, first_oracle, tol)
    if measurement.status != MEASURED:
        return verdict
    for name, oracle in others:
        other = judge(measurement, oracle, tol)
        verdict.metrics += [
            Metric(f"{m.name}_{name}", m.value, m.unit, m.output)
            for m in other.metrics
            if m.name in ACCURACY_METRICS
        ]
        disagreement = oracle_disagreement(first_oracle, oracle)
        if disagreement is not None:
            value, output = disagreement
            verdict.metrics.append(Metric(MetricName.ORACLE_DISAGREEMENT, value, "rel"))
            if not value <= ORACLES_AGREE_TOL:
                message = (
                    f"the {first} and {name} oracles disagree: relative difference {value:.3g} in {output} "
                    f"> {ORACLES_AGREE_TOL:g}"
                )
                return Verdict(Status.ERROR, message, verdict.oracle_method, verdict.metrics)
        if verdict.status == Status.OK and other.status != Status.OK:
            return Verdict(
                other.status,
                f"against the {name} oracle: {other.message}",
                other.oracle_method,
                verdict.metrics,
            )
    return verdict


def oracle_disagreement(first, second) -> tuple[float, str] | None:
    """(worst relative difference, its output) between two oracles' answers; None if either
    has no answer, or their outputs do not match (the cell's own verdict says so)."""
    if oracle_problem(first) is not None or oracle_problem(second) is not None:
        return None
    try:
        errors = relative_errors(
            {k: torch.from_numpy(v) for k, v in second.values.items()},
            {k: torch.from_numpy(v) for k, v in first.values.items()},
        )
    except (KeyError, ValueError):
        return None
    worst = max(errors, key=errors.get)
    return errors[worst], worst


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
    metrics = [Metric(MetricName.RELATIVE_ERROR, value, "rel", name) for name, value in errors.items()]
    metrics.append(Metric(MetricName.RELATIVE_ERROR, max(errors.values()), "rel"))
    metrics += [
        Metric(MetricName.ORACLE_ERROR_ESTIMATE, float(v), "rel", name) for name, v in estimates.items()
    ]
    if estimates:
        metrics.append(Metric(MetricName.ORACLE_ERROR_ESTIMATE, max(map(float, estimates.values())), "rel"))
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
        Metric(MetricName.TIME_MEDIAN, measurement.time_median, "s"),
        Metric(MetricName.TIME_IQR, measurement.time_iqr, "s"),
        Metric(measurement.memory_metric, measurement.peak_bytes, "B"),
        Metric(MetricName.SAVED_TENSOR_BYTES, measurement.saved_bytes, "B"),
    ]
    for phase in ("forward", "backward"):
        for name, unit in SOLVER_METRICS.items():
            key = f"{phase}_{name}"
            metrics.append(Metric(key, float(measurement.solver_totals.get(key, float("nan"))), unit))
    metrics.append(Metric(MetricName.REPEATS, len(measurement.times), "count"))
    # each repeat's seconds (the output column numbers them): what noise tests compare
    metrics += [Metric(MetricName.TIME_REPEAT, t, "s", str(i)) for i, t in enumerate(measurement.times)]
    if not math.isnan(measurement.compile_seconds):  # a compiled (JAX) strategy
        metrics.append(Metric(MetricName.COMPILE_TIME, measurement.compile_seconds, "s"))
        metrics += [Metric(f"xla_{name}", value, "B") for name, value in measurement.compiled_memory.items()]
    return metrics
