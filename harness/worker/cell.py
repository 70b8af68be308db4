"""One cell, built: the strategy and problem instance a cell spec names, ready to run.

:class:`CellSpec` is plain data (it pickles to a worker process); :func:`build_problem` is
the one place that turns a spec into a problem instance, for the measuring worker (on the
cell's device) and for the oracle (on the CPU) alike. :class:`PreparedCell` is what the
worker measures and what the asv suite times: ``run()`` answers the query once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from deqbench.harness.references import resolve_class
from deqbench.harness.worker.memory import peak_memory, saved_tensor_bytes
from deqbench.problems.base import Problem
from deqbench.queries import QueryResult
from deqbench.strategies.base import Strategy
from deqbench.tolerances import DTYPES


@dataclass(frozen=True)
class CellSpec:
    """Everything a worker needs to build and measure one cell."""

    strategy: str  # registry name or /absolute/file.py:Class
    problem: str
    query: str
    preset: str
    overrides: dict[str, Any]
    device: str
    dtype: str
    seed: int
    solver_settings: dict[str, Any] = field(default_factory=dict)  # f_tol, b_tol, ...
    warmup: int = 1
    repeats: int = 3
    threads: int | None = None


def build_problem(spec: CellSpec, device: str | None = None) -> Problem:
    """The spec's problem instance, on ``device`` (default: the spec's) in the spec's dtype.

    Problems draw their numbers in float64 on the CPU whatever the device, so the oracle's
    CPU instance holds the same numbers as the worker's.
    """
    problem_cls = resolve_class(spec.problem, "problem")
    return problem_cls(
        spec.preset,
        dtype=DTYPES[spec.dtype],
        device=device or spec.device,
        seed=spec.seed,
        **spec.overrides,
    )


@dataclass(frozen=True)
class ProblemCheck:
    """A worker job: build the spec's problem instance on the CPU and evaluate its layer once
    under each of ``backends`` it declares; "" when all that works, else one line saying
    what raised. A problem that cannot do this is the user's mistake, found before any cell
    runs, never charged to a strategy."""

    spec: CellSpec
    backends: tuple[str, ...] = ("torch",)

    def __call__(self) -> str:
        doing = "building it"
        try:
            problem = build_problem(self.spec, device="cpu")
            for backend in self.backends:
                if problem.backend_unavailable_reason(backend) is None:
                    doing = f"its layer f under {backend}"
                    instance = problem.for_backend(backend)
                    instance.f(instance.theta, instance.x, instance.z_init())
        except Exception as error:  # noqa: BLE001 - whatever a user's problem raises is reported
            lines = str(error).strip().splitlines()
            return f"{doing} raised {type(error).__name__}: {lines[0] if lines else ''}"
        return ""


def build_strategy(spec: CellSpec) -> Strategy:
    return resolve_class(spec.strategy, "strategy")(**spec.solver_settings)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class PreparedCell:
    """A cell's strategy and problem instance, built once, with what measuring needs."""

    spec: CellSpec
    strategy: Strategy
    problem: Problem
    warmed_up: bool = False

    compile_seconds: float = math.nan  # JAX: lowering and compiling the query; NaN for torch
    compiled_memory: dict[str, float] = field(default_factory=dict)  # XLA's memory_analysis()

    @classmethod
    def build(cls, spec: CellSpec) -> PreparedCell:
        """The strategy and the problem instance in the strategy's framework (the same
        numbers: a JAX instance is the torch one converted)."""
        strategy, problem = build_strategy(spec), build_problem(spec)
        if problem.backend_unavailable_reason(strategy.backend) is None:
            problem = problem.for_backend(strategy.backend)
        return cls(spec, strategy, problem)

    @property
    def backend(self) -> str:
        return self.strategy.backend

    @property
    def query(self) -> str:
        return self.spec.query

    def unsupported_reason(self) -> str | None:
        return self.strategy.unsupported_reason(self.query, self.problem)

    def run(self) -> QueryResult:
        """Answer the query once; on CUDA the query ends when its kernels do (a JAX strategy's
        run returns only once its computation is ready)."""
        result = self.strategy.run(self.query, self.problem)
        synchronize(self.problem.device)
        return result

    def compile(self) -> None:
        """Compile the query where the strategy compiles (JAX), timed apart from every run."""
        compile_query = getattr(self.strategy, "compile", None)
        if compile_query is not None and math.isnan(self.compile_seconds):
            info = compile_query(self.query, self.problem)
            self.compile_seconds, self.compiled_memory = info.seconds, dict(info.memory)

    def warm_up(self) -> None:
        """Compile, then the spec's warm-up runs, once: the first run pays lazy initialisation
        and first allocations, which no measurement must include."""
        self.compile()
        if not self.warmed_up:
            for _ in range(self.spec.warmup):
                self.run()
            self.warmed_up = True

    def timed_run(self) -> float:
        synchronize(self.problem.device)
        start = time.perf_counter()
        self.run()
        return time.perf_counter() - start

    def memory_run(self):
        """(result, peak meter): one run under the device's peak-memory meter."""
        with peak_memory(self.problem.device, self.backend) as peak:
            result = self.run()
        return result, peak

    def saved_bytes(self) -> float:
        """Peak bytes autograd holds for backward during one run (each storage once).

        A run of its own: the saved-tensor hooks keep a Python wrapper per saved tensor and
        change what torch.func allocates, which would show in the peak (4 MiB on analytic's
        pinn_grad at the quick size, against 16 KiB without them). Some torch.func
        transforms refuse the hooks: NaN then, and for JAX strategies (no autograd graph).
        """
        if self.backend != "torch":
            return float("nan")
        try:
            with saved_tensor_bytes() as saved:
                self.run()
        except RuntimeError as error:
            if "hook" not in str(error).lower():
                raise
            return float("nan")
        return float(saved.peak_bytes)
