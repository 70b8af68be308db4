"""Running the matrix: checked settings, the plan of cells, and the loop over them.

The loop measures each cell in a worker process of its own (:mod:`.worker`), verifies the
answer against the oracle in this process (:mod:`.oracle_cache`), and writes the cell's
rows to the run folder before starting the next (:mod:`.results`): a killed run loses only
the cell in flight, and :func:`resume_settings` plus :func:`execute` finish the rest.

Every check of user input happens in :func:`make_settings` and :func:`prepare_out`, before
anything is written; they raise :class:`BadInput` with one line naming what was wrong and
what is accepted (the CLI prints it and exits with code 2).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import psutil
import torch

from deqbench.harness import results
from deqbench.harness.accuracy import relative_errors
from deqbench.harness.matrix import Cell, build_matrix
from deqbench.harness.oracle_cache import OracleCache
from deqbench.harness.results import Metric, RunFolder
from deqbench.harness.worker import (
    DTYPES,
    MEASURED,
    BadReference,
    CellSpec,
    Measurement,
    device_name,
    is_file_reference,
    one_line,
    resolve_class,
    run_in_worker,
)
from deqbench.problems.base import PROBLEMS
from deqbench.queries import QUERIES
from deqbench.strategies.base import STRATEGIES

#: --quick: the "quick" size preset, one warm-up run and three timed repeats.
QUICK = {"preset": "quick", "warmup": 1, "repeats": 3}
FULL = {"preset": "default", "warmup": 1, "repeats": 5}
#: Solver tolerances a dtype can reach, and the relative error above which an answer is
#: "wrong". float32 cannot resolve a 1e-10 residual, nor agree with float64 to 1e-6: third
#: derivatives (pinn2_grad) of a correct strategy lose a few more digits to rounding, up to
#: 2e-3 on the quick problems, so float32 checks catch blunders and float64 checks digits.
SOLVER_TOL = {"float64": 1e-10, "float32": 1e-5}
VERIFY_TOL = {"float64": 1e-6, "float32": 1e-2}


class BadInput(ValueError):
    """Input the run cannot start with; the message is one line for the user."""


# ------------------------------------------------------------------- settings
@dataclass
class RunSettings:
    """Everything that defines a run's cells and how they are measured (saved in run.json)."""

    strategies: list[str]  # registry names, or /absolute/path.py:Class
    problems: list[str]
    queries: list[str]
    preset: str
    overrides: dict[str, str] = field(default_factory=dict)  # size knobs, as given
    device: str = "cpu"
    dtype: str = "float64"
    seed: int = 0
    warmup: int = FULL["warmup"]
    repeats: int = FULL["repeats"]
    f_tol: float = SOLVER_TOL["float64"]
    b_tol: float = SOLVER_TOL["float64"]
    f_max_iter: int = 500
    b_max_iter: int = 500
    timeout: float | None = None
    tol: float = VERIFY_TOL["float64"]
    threads: int | None = None
    #: A cell whose resident set passes this many bytes is stopped ("oom"); 0: no cap;
    #: None: a share of the memory available when the run (or its resume) starts.
    max_memory: int | None = None

    def solver_settings(self) -> dict[str, Any]:
        return {
            "f_tol": self.f_tol,
            "b_tol": self.b_tol,
            "f_max_iter": self.f_max_iter,
            "b_max_iter": self.b_max_iter,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        return cls(**data)


def make_settings(
    strategies: str | Sequence[str] = "all",
    problems: str | Sequence[str] = "all",
    queries: str | Sequence[str] = "all",
    *,
    size: str | None = None,
    quick: bool = False,
    device: str = "cpu",
    dtype: str = "float64",
    seed: int = 0,
    warmup: int | None = None,
    repeats: int | None = None,
    f_tol: float | None = None,
    b_tol: float | None = None,
    f_max_iter: int = 500,
    b_max_iter: int = 500,
    timeout: float | None = None,
    tol: float | None = None,
    threads: int | None = None,
    max_memory: str | int | None = None,
) -> RunSettings:
    """Checked settings from what a user typed; raises BadInput on the first problem."""
    if dtype not in DTYPES:
        raise BadInput(f"unknown --dtype {dtype!r}; accepted: {', '.join(DTYPES)}")
    check_device(device)
    defaults = QUICK if quick else FULL
    preset, overrides = parse_size(size)
    settings = RunSettings(
        strategies=resolve_references(strategies, "strategy"),
        problems=resolve_references(problems, "problem"),
        queries=resolve_queries(queries),
        preset=preset or defaults["preset"],
        overrides=overrides,
        device=device,
        dtype=dtype,
        seed=int(seed),
        warmup=defaults["warmup"] if warmup is None else int(warmup),
        repeats=defaults["repeats"] if repeats is None else int(repeats),
        f_tol=SOLVER_TOL[dtype] if f_tol is None else float(f_tol),
        b_tol=SOLVER_TOL[dtype] if b_tol is None else float(b_tol),
        f_max_iter=int(f_max_iter),
        b_max_iter=int(b_max_iter),
        timeout=None if timeout is None else float(timeout),
        tol=VERIFY_TOL[dtype] if tol is None else float(tol),
        threads=None if threads is None else int(threads),
        max_memory=parse_bytes(max_memory),
    )
    check_numbers(settings)
    check_sizes(settings)
    return settings


def check_device(device: str) -> None:
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise BadInput(f"unknown --device {device!r}; accepted: cpu, cuda, cuda:N") from None
    if parsed.type not in ("cpu", "cuda"):
        raise BadInput(f"unknown --device {device!r}; accepted: cpu, cuda, cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(
                f"--device {device}: CUDA is not available here (torch {torch.__version__}); accepted: cpu"
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise BadInput(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s); "
                f"accepted: cuda:0 .. cuda:{torch.cuda.device_count() - 1}"
            )


def check_numbers(settings: RunSettings) -> None:
    rules = [
        ("--repeats", settings.repeats, settings.repeats >= 1, "an integer >= 1"),
        ("--warmup", settings.warmup, settings.warmup >= 0, "an integer >= 0"),
        ("--f-tol", settings.f_tol, settings.f_tol > 0, "a number > 0"),
        ("--b-tol", settings.b_tol, settings.b_tol > 0, "a number > 0"),
        ("--tol", settings.tol, settings.tol > 0, "a number > 0"),
        ("--f-max-iter", settings.f_max_iter, settings.f_max_iter >= 1, "an integer >= 1"),
        ("--b-max-iter", settings.b_max_iter, settings.b_max_iter >= 1, "an integer >= 1"),
        ("--timeout", settings.timeout, settings.timeout is None or settings.timeout > 0, "seconds > 0"),
        ("--threads", settings.threads, settings.threads is None or settings.threads >= 1, "an integer >= 1"),
    ]
    for option, value, ok, accepted in rules:
        if not ok:
            raise BadInput(f"{option} {value}: accepted: {accepted}")


def split_names(value: str | Sequence[str], option: str) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``, without blanks or repeats."""
    items = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not names:
        raise BadInput(f"{option} is empty; give a name, a comma-separated list, or all")
    return names


def resolve_references(value: str | Sequence[str], kind: str) -> list[str]:
    """Registry names and ``file.py:Class`` references, checked; "all" is every registered one.

    File references are kept with an absolute path, so a resumed run finds them wherever it
    is started from.
    """
    registry = STRATEGIES if kind == "strategy" else PROBLEMS
    references = []
    for name in split_names(value, f"--{kind}"):
        if name == "all":
            references.extend(registry.names())
            continue
        try:
            resolve_class(name, kind)
        except BadReference as error:
            raise BadInput(str(error)) from None
        if is_file_reference(name):
            path, _, class_name = name.rpartition(":")
            name = f"{Path(path).resolve()}:{class_name}"
        references.append(name)
    return list(dict.fromkeys(references))


def resolve_queries(value: str | Sequence[str]) -> list[str]:
    names = split_names(value, "--query")
    if "all" in names:
        return list(QUERIES)
    for name in names:
        if name not in QUERIES:
            raise BadInput(f"unknown query {name!r}; known: {', '.join(QUERIES)}, all")
    return names


def parse_size(text: str | None) -> tuple[str | None, dict[str, str]]:
    """``"quick"``, ``"m=256,batch=128"`` or ``"large,batch=8"`` -> (preset, overrides)."""
    if text is None or not text.strip():
        return None, {}
    preset, overrides = None, {}
    for item in (part.strip() for part in text.split(",")):
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            if preset is not None or not key:
                raise BadInput(
                    f"malformed --size {text!r}: at most one preset name; accepted: a preset "
                    "(quick, default, large), knob=value pairs, or both, comma-separated"
                )
            preset = key
        elif not key or not value or not key.isidentifier():
            raise BadInput(f"malformed --size item {item!r} in {text!r}; accepted: knob=value, e.g. m=256")
        else:
            overrides[key] = value
    return preset, overrides


BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(value: str | int | None) -> int | None:
    """``"4G"``, ``"512M"``, ``"1.5G"`` or a byte count -> bytes; ``"none"`` -> 0 (no cap)."""
    if value is None or isinstance(value, int):
        return value
    text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
    if text in ("NONE", "0"):
        return 0
    unit = text[-1] if text and text[-1] in BYTE_UNITS else ""
    try:
        amount = float(text[: len(text) - len(unit)])
    except ValueError:
        amount = -1.0
    if amount <= 0:
        raise BadInput(
            f"malformed --max-memory {value!r}; accepted: bytes with K, M, G or T (e.g. 8G), or none"
        )
    return int(amount * BYTE_UNITS[unit])


#: Without --max-memory, a cell may use this share of the memory available at the start.
AUTO_MEMORY_SHARE = 0.9


def memory_cap(settings: RunSettings) -> int | None:
    """The resident-set cap for this run's cells, in bytes (None: no cap)."""
    if settings.max_memory is None:
        return int(AUTO_MEMORY_SHARE * psutil.virtual_memory().available)
    return settings.max_memory or None


def problem_overrides(problem_cls: type, preset: str, overrides: dict[str, str]) -> dict[str, str]:
    """The overrides that name one of this problem's knobs (others belong to other problems)."""
    knobs = problem_cls.presets.get(preset, {})
    return {key: value for key, value in overrides.items() if key in knobs}


def check_sizes(settings: RunSettings) -> None:
    """Every problem has the preset and takes its knobs' values; every knob is someone's."""
    known: set[str] = set()
    for reference in settings.problems:
        problem_cls = resolve_class(reference, "problem")
        own = problem_overrides(problem_cls, settings.preset, settings.overrides)
        try:
            problem_cls.resolve_size(settings.preset, own)
        except (ValueError, TypeError) as error:
            raise BadInput(f"--size: {error}") from None
        known.update(problem_cls.presets[settings.preset])
    unknown = sorted(set(settings.overrides) - known)
    if unknown:
        raise BadInput(
            f"--size: no selected problem has a knob {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )


# ------------------------------------------------------------------ run folder
def default_out() -> Path:
    return Path("results") / results.new_run_id()


def prepare_out(out: str | os.PathLike | None) -> Path:
    """Where a new run goes, checked (not created): absent or empty, and creatable."""
    path = Path(out) if out is not None else default_out()
    if RunFolder(path).exists():
        raise BadInput(f"--out {path} already holds a run; finish it with --resume {path}, or choose another")
    if path.exists() and not path.is_dir():
        raise BadInput(f"--out {path} is a file; accepted: a new or empty folder")
    if path.is_dir() and any(path.iterdir()):
        raise BadInput(f"--out {path} is not empty; accepted: a new or empty folder")
    ancestor = path.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise BadInput(f"cannot create --out {path}: {ancestor} is not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise BadInput(f"cannot create --out {path}: {ancestor} is not writable")
    return path


def create_run(settings: RunSettings, out: Path, cells: list[Cell]) -> tuple[RunFolder, dict[str, Any]]:
    """Make the run folder and its run.json; nothing is left behind if that fails."""
    folder = RunFolder(out)
    run = {
        "run_id": results.new_run_id(),
        "created": results.utc_now(),
        "settings": settings.to_dict(),
        "cells": [cell.id for cell in cells],
    }
    existed = out.exists()
    try:
        folder.create(run)
    except OSError as error:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
        raise BadInput(f"cannot create --out {out}: {error.strerror or error}") from None
    return folder, run


def resume_settings(path: str | os.PathLike) -> tuple[RunSettings, RunFolder, dict[str, Any]]:
    """A run folder's settings, checked again (a strategy file may have moved since)."""
    folder = RunFolder(path)
    if not folder.exists():
        raise BadInput(
            f"--resume {path}: no {results.RUN_FILE} there; accepted: a folder made by deqbench run"
        )
    try:
        run = folder.load()
        settings = RunSettings.from_dict(run["settings"])
    except (ValueError, KeyError, TypeError) as error:
        raise BadInput(f"--resume {path}: unreadable {results.RUN_FILE} ({error})") from None
    resolve_references(settings.strategies, "strategy")
    resolve_references(settings.problems, "problem")
    check_device(settings.device)
    return settings, folder, run


# ------------------------------------------------------------------------ plan
@dataclass(frozen=True)
class PlannedCell:
    cell: Cell
    spec: CellSpec
    size: dict[str, Any]  # the problem's resolved size knobs


def checked_plan(settings: RunSettings) -> list[PlannedCell]:
    """:func:`plan`, with a problem that cannot even be built reported as bad input."""
    try:
        return plan(settings)
    except BadInput:
        raise
    except Exception as error:  # noqa: BLE001 - a user's problem or strategy failing to build
        raise BadInput(f"cannot build the matrix: {one_line(error)}") from None


def plan(settings: RunSettings) -> list[PlannedCell]:
    """The run's cells, in the matrix's order, each with what its worker needs."""
    strategy_refs = {resolve_class(ref, "strategy").name: ref for ref in settings.strategies}
    problem_refs = {resolve_class(ref, "problem").name: ref for ref in settings.problems}
    matrix = build_matrix(list(strategy_refs), list(problem_refs), settings.queries, settings.preset)
    planned = []
    for cell in matrix:
        problem_cls = PROBLEMS.get(cell.problem)
        overrides = problem_overrides(problem_cls, settings.preset, settings.overrides)
        spec = CellSpec(
            strategy=strategy_refs[cell.strategy],
            problem=problem_refs[cell.problem],
            query=cell.query,
            preset=settings.preset,
            overrides=overrides,
            device=settings.device,
            dtype=settings.dtype,
            seed=settings.seed,
            solver_settings=settings.solver_settings(),
            warmup=settings.warmup,
            repeats=settings.repeats,
            threads=settings.threads,
        )
        size = problem_cls.resolve_size(settings.preset, overrides)
        planned.append(PlannedCell(cell, spec, size))
    return planned


# -------------------------------------------------------------------- progress
class Reporter(Protocol):
    def started(self, planned: PlannedCell, index: int, total: int) -> None: ...

    def finished(self, planned: PlannedCell, status: str) -> None: ...


class SilentReporter:
    def started(self, planned: PlannedCell, index: int, total: int) -> None:
        pass

    def finished(self, planned: PlannedCell, status: str) -> None:
        pass


# ------------------------------------------------------------------- execution
class Verifier:
    """The oracle's answers for the run's problem instances, each instance built once."""

    def __init__(self, settings: RunSettings, cache: OracleCache):
        self.settings = settings
        self.cache = cache
        self._instances: dict[str, Any] = {}

    def instance(self, planned: PlannedCell):
        """The cell's problem instance, on the CPU in the run's dtype (same numbers as the
        worker's: problems draw their numbers in float64 on the CPU whatever the device)."""
        key = planned.spec.problem
        if key not in self._instances:
            problem_cls = resolve_class(key, "problem")
            self._instances[key] = problem_cls(
                self.settings.preset,
                dtype=DTYPES[self.settings.dtype],
                device="cpu",
                seed=self.settings.seed,
                **planned.spec.overrides,
            )
        return self._instances[key]

    def answer(self, planned: PlannedCell):
        return self.cache.answer(self.instance(planned), planned.cell.query)


def execute(
    settings: RunSettings,
    folder: RunFolder,
    run: dict[str, Any],
    reporter: Reporter | None = None,
    cache: OracleCache | None = None,
) -> pd.DataFrame:
    """Run every cell not yet in the folder, writing each as it finishes; all rows after."""
    reporter = reporter or SilentReporter()
    planned_cells = plan(settings)
    folder.remove_partial_files()
    done = folder.finished()
    todo = [p for p in planned_cells if p.cell.id not in done]
    verifier = Verifier(settings, cache or OracleCache())
    metadata = {**results.run_metadata(), **machine_defaults(settings)}
    cap = memory_cap(settings)
    for index, planned in enumerate(todo):
        reporter.started(planned, index, len(todo))
        rows = run_cell(planned, settings, run["run_id"], metadata, verifier, folder, cap)
        folder.write_cell(planned.cell.id, rows)
        reporter.finished(planned, rows["status"].iloc[0])
    return folder.read()


def run_cell(
    planned: PlannedCell,
    settings: RunSettings,
    run_id: str,
    metadata: dict[str, str],
    verifier: Verifier,
    folder: RunFolder,
    memory_cap: int | None = None,
) -> pd.DataFrame:
    """One cell's rows: unsupported at once, or measured in a worker and verified here."""
    if not planned.cell.supported:
        measurement = Measurement(results.UNSUPPORTED, planned.cell.unsupported)
    else:
        log_path = folder.log_path(planned.cell.id)
        spec = CellSpec(**{**asdict(planned.spec), "log_path": str(log_path)})
        measurement = run_in_worker(spec, settings.timeout, memory_cap)
        remove_if_empty(log_path)
    status, message, oracle_method, metrics = judge(planned, measurement, settings, verifier)
    identity = {
        "run_id": run_id,
        "cell": planned.cell.id,
        "strategy": planned.cell.strategy,
        "problem": planned.cell.problem,
        "query": planned.cell.query,
        "preset": settings.preset,
        "size": results.format_size(planned.size),
        "device": settings.device,
        "dtype": settings.dtype,
        "status": status,
        "expected_exact": planned.cell.expected_exact,
        "message": message,
        "oracle_method": oracle_method,
        "tol": settings.tol,
        **settings.solver_settings(),
        "seed": settings.seed,
        **metadata,
        "timestamp": results.utc_now(),
    }
    if measurement.device_name:  # what the worker saw; also the default for later cells
        identity["device_name"] = metadata["device_name"] = measurement.device_name
        identity["threads"] = metadata["threads"] = measurement.threads
    return results.cell_rows(identity, metrics)


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


def judge(
    planned: PlannedCell, measurement: Measurement, settings: RunSettings, verifier: Verifier
) -> tuple[str, str, str, list[Metric]]:
    """(status, message, oracle method, metrics) of a cell from its worker's measurement."""
    wall = Metric("cell_wall_time", measurement.wall_seconds, "s")
    if measurement.status != MEASURED:  # unsupported, error, oom, timeout: nothing to verify
        return measurement.status, measurement.message, "", [wall]
    metrics = [*measurement_metrics(measurement, settings), wall]
    diverged = not all(
        measurement.solver_totals.get(f"{phase}_converged", 1.0) for phase in ("forward", "backward")
    )
    try:
        answer = verifier.answer(planned)
        errors = relative_errors(
            {name: torch.from_numpy(value) for name, value in measurement.values.items()}, answer.values
        )
    except Exception as error:  # noqa: BLE001 - a cell the oracle cannot check is an error
        status = results.DIVERGED if diverged else results.ERROR
        message = divergence_message(measurement) if diverged else f"oracle: {one_line(error)}"
        return status, message, "", metrics
    metrics = accuracy_metrics(errors, answer.error_estimate) + metrics
    worst_output = max(errors, key=errors.get)
    if diverged:
        status, message = results.DIVERGED, divergence_message(measurement)
    elif not errors[worst_output] <= settings.tol:  # NaN is wrong too
        status = results.WRONG
        message = f"relative error {errors[worst_output]:.3g} in {worst_output} > tol {settings.tol:g}"
    else:
        status, message = results.OK, ""
    return status, message, answer.method, metrics


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


def measurement_metrics(measurement: Measurement, settings: RunSettings) -> list[Metric]:
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
    metrics += [
        Metric("warmup", settings.warmup, "count"),
        Metric("repeats", len(measurement.times), "count"),
    ]
    return metrics
