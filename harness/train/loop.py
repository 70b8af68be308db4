"""`deqbench train`: a physics-informed DEQ trained with each strategy's gradient.

A training run is a results folder like ``deqbench run``'s (:mod:`.run_folder`: run.json,
one parquet file per finished cell, written atomically, a lock, one writer), whose run.json
says ``"kind": "train"`` and whose cells are (strategy, problem, seed) training runs, plus the
MLP baseline per (problem, seed). Every cell of a seed starts from the same parameters (the
problem instance's own) on the same collocation points. Each step is Adam on the gradient
of ``data_weight * data_loss + physics_loss`` and records tidy rows, one per (cell, step,
metric): every loss term, the step's wall time and peak memory, forward and backward
iterations, and, every ``eval_every`` steps, the test error against the ODE reference.

Folder extras::

    checkpoints/<cell>.pt    parameters, Adam's state and the rows so far, every N steps
    trajectories/<cell>.pt   the parameters at every evaluated step (for the drift figures)

A step that raises, or a loss or gradient that is not finite, is recorded (status
``error``, the message naming the step) and ends that cell; the run goes on. An interrupted
run resumes (``deqbench train --resume DIR``) from each cell's last checkpoint.

The cells run one after another in this process (no worker processes: a training step is
short and its memory is measured per step, see :func:`step_memory`).
"""

from __future__ import annotations

import io
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from deqbench.harness.options import BadInput
from deqbench.harness.references import resolve_class
from deqbench.harness.results import rows as results
from deqbench.harness.results.files import write_atomically
from deqbench.harness.results.life_cycle import (
    RunAborted,
    check_resume_imports,
    create_run,
    notify_on_stderr,
    prepare_out,
)
from deqbench.harness.results.rows import COLUMNS, Metric, format_size, legacy_safe_name, safe_name
from deqbench.harness.results.run_folder import RUN_FILE, FolderInUse, RunFolder, UnreadableRun
from deqbench.harness.results.status import Status
from deqbench.harness.train.models import MLP_NAME, DeqModel, MlpPinn
from deqbench.harness.train.settings import TrainSettings
from deqbench.harness.worker.measure import device_name, on_cpu, one_line, threads_restored, use_threads
from deqbench.harness.worker.memory import peak_memory
from deqbench.tolerances import DTYPES

TRAIN_KIND = "train"
TRAIN_QUERY = "train"
CHECKPOINTS_DIR = "checkpoints"
TRAJECTORIES_DIR = "trajectories"
#: A training row is a run row with the step it belongs to.
TRAIN_COLUMNS = [*COLUMNS, "step"]
#: The test grid is drawn with its own seed, apart from the collocation points of the seed.
TEST_SEED_OFFSET = 1_000_003
#: A cell whose loss rises above this many times its first step's loss has diverged (three
#: orders of magnitude: Adam at a sane rate never climbs that far above where it started).
DIVERGED_LOSS_GROWTH = 1e3
#: A cell whose gradient's solves fail to converge in this many steps in a row has diverged.
DIVERGED_UNCONVERGED_STREAK = 5


# ------------------------------------------------------------------ cells
@dataclass(frozen=True)
class TrainCell:
    strategy: str  # a strategy reference, or MLP_NAME
    problem: str  # a problem reference
    seed: int

    @property
    def strategy_name(self) -> str:
        return MLP_NAME if self.strategy == MLP_NAME else resolve_class(self.strategy, "strategy").name

    @property
    def problem_name(self) -> str:
        return resolve_class(self.problem, "problem").name

    @property
    def id(self) -> str:
        return f"train/{self.strategy_name}/{self.problem_name}/seed={self.seed}"


def plan_cells(settings: TrainSettings) -> list[TrainCell]:
    """Seed by seed, so that an interrupted run has whole seeds to compare first."""
    strategies = settings.strategies + ([] if settings.no_mlp else [MLP_NAME])
    return [
        TrainCell(strategy, problem, seed)
        for seed in settings.seed_list
        for problem in settings.problems
        for strategy in strategies
    ]


# ------------------------------------------------------------- run folders
def is_training_run(run: dict[str, Any]) -> bool:
    return run.get("kind") == TRAIN_KIND


def new_training(settings: TrainSettings, out: str | os.PathLike | None) -> tuple[RunFolder, dict]:
    """A new training run's folder, made once its settings and folder check out."""
    path = prepare_out(out)
    cells = [cell.id for cell in plan_cells(settings)]
    return create_run(settings, path, cells, kind=TRAIN_KIND)


def resume_training(
    path: str | os.PathLike, trust: bool = False, notify=lambda line: None
) -> tuple[TrainSettings, RunFolder, dict]:
    """A training folder's settings, checked again; BadInput with one line otherwise. Files
    it would import are named and trusted as :func:`~deqbench.harness.run.runner.resume_settings`
    says."""
    folder = RunFolder(path)
    if not folder.exists():
        raise BadInput(f"--resume {path}: no {RUN_FILE} there; accepted: a folder made by deqbench train")
    try:
        run = folder.load()
    except UnreadableRun as error:
        raise BadInput(f"--resume {path}: {error}") from None
    if not is_training_run(run):
        raise BadInput(f"--resume {path}: a deqbench run folder, not a training one (deqbench run --resume)")
    check_resume_imports(folder, run, trust, notify)
    try:
        settings = TrainSettings.from_dict(run["settings"])
    except BadInput as error:
        raise BadInput(f"--resume {path}: {RUN_FILE} settings: {error}") from None
    return settings, folder, run


def checkpoint_path(folder: RunFolder, cell_id: str, name=safe_name) -> Path:
    return folder.root / CHECKPOINTS_DIR / f"{name(cell_id)}.pt"


def trajectory_path(folder: RunFolder, cell_id: str, name=safe_name) -> Path:
    return folder.root / TRAJECTORIES_DIR / f"{name(cell_id)}.pt"


def stored_path(path_of, folder: RunFolder, cell_id: str) -> Path:
    """Where a cell's checkpoint or trajectory is to be read: its file, or the one older
    deqbench named after :func:`legacy_safe_name` when only that one is there."""
    path = path_of(folder, cell_id)
    legacy = path_of(folder, cell_id, legacy_safe_name)
    return legacy if not path.exists() and legacy.is_file() else path


def save_torch(path: Path, payload: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_atomically(path, buffer.getvalue())


def load_torch(path: Path) -> dict[str, Any] | None:
    """A checkpoint or trajectory file; None when absent or unreadable (then recomputed)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - a truncated file from a killed write, or a foreign one
        return None


def load_trajectory(folder: RunFolder, cell_id: str) -> dict[str, Any] | None:
    """``{"steps": [...], "theta": [dict of tensors per step]}`` of a finished cell."""
    return load_torch(stored_path(trajectory_path, folder, cell_id))


# --------------------------------------------------------------- problems
def build_problem(cell: TrainCell, settings: TrainSettings, test: bool = False):
    """The cell's problem instance (its seed's parameters and collocation points), or the
    test instance: ``test_points`` points, drawn with a seed of their own."""
    cls = resolve_class(cell.problem, "problem")
    knobs = cls.presets[settings.preset]
    overrides = {k: v for k, v in settings.overrides.items() if k in knobs}
    seed = cell.seed
    if test:
        if "batch" in knobs:
            overrides["batch"] = str(settings.test_count)
        seed = (seed + TEST_SEED_OFFSET) % 2**63
    size = cls.resolve_size(settings.preset, overrides)
    return cls(settings.preset, dtype=DTYPES[settings.dtype], device=settings.device, seed=seed, **size)


def make_model(cell: TrainCell, problem, settings: TrainSettings):
    if cell.strategy == MLP_NAME:
        return MlpPinn(problem, settings.data_weight, cell.seed)
    strategy = resolve_class(cell.strategy, "strategy")(**settings.solver_settings())
    return DeqModel(strategy, problem, settings.data_weight)


# ---------------------------------------------------------------- one step
def step_memory(settings: TrainSettings, backend: str):
    """Peak memory of one step: the resident set's high-water mark over its level at the
    start of the step (VmHWM, reset each step; no garbage collection before, which costs
    a quarter of a second once torch and JAX are loaded), or CUDA's allocator peak."""
    return peak_memory(settings.device, backend, collect_garbage=False)


def synchronize(settings: TrainSettings) -> None:
    if settings.device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_gradient(model, theta, settings: TrainSettings, backend: str):
    """The step's gradient, its wall time and its peak memory."""
    synchronize(settings)
    with step_memory(settings, backend) as memory:
        start = time.perf_counter()
        gradient = model.gradient({k: v.clone() for k, v in theta.items()})
        synchronize(settings)
        seconds = time.perf_counter() - start
    return gradient, seconds, memory


def timed_update(optimizer, theta, gradient, settings: TrainSettings) -> float:
    start = time.perf_counter()
    for name, tensor in theta.items():
        tensor.grad = gradient.values[name]
    optimizer.step()
    synchronize(settings)
    return time.perf_counter() - start


def not_finite(terms: dict[str, float], gradient) -> str:
    """What in a step is not finite ("" when everything is)."""
    bad = [name for name, value in terms.items() if not math.isfinite(value)]
    bad += [f"gradient {name}" for name, g in gradient.values.items() if not torch.isfinite(g).all()]
    return ", ".join(bad)


# ------------------------------------------------------------------- a cell
class CellTraining:
    """One cell's training: state, checkpoints and rows."""

    def __init__(self, cell: TrainCell, settings: TrainSettings, folder: RunFolder, context: dict):
        self.cell, self.settings, self.folder, self.context = cell, settings, folder, context
        self.problem = build_problem(cell, settings)
        self.test = build_problem(cell, settings, test=True)
        self.model = make_model(cell, self.problem, settings)
        self.backend = getattr(getattr(self.model, "strategy", None), "backend", "torch")
        self.theta = self.model.initial_theta()
        self.optimizer = torch.optim.Adam(list(self.theta.values()), lr=settings.lr)
        self.records: list[tuple[int, str, float, str]] = []
        self.trajectory: dict[str, list] = {"steps": [], "theta": []}
        self.start = 0
        self.status, self.message = Status.OK, ""
        self.unconverged = 0
        self.unconverged_streak = 0

    # ----------------------------------------------------------- checkpoints
    def restore(self) -> bool:
        """Continue from the cell's last checkpoint, if it has a readable one."""
        saved = load_torch(stored_path(checkpoint_path, self.folder, self.cell.id))
        if saved is None or saved.get("run_id") != self.context["run_id"]:
            return False
        with torch.no_grad():
            for name, tensor in self.theta.items():
                tensor.copy_(saved["theta"][name])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.records = [tuple(r) for r in saved["records"]]
        self.trajectory = saved["trajectory"]
        self.start, self.unconverged = saved["step"], saved["unconverged"]
        self.unconverged_streak = saved.get("unconverged_streak", 0)
        return True

    def checkpoint(self, next_step: int) -> None:
        save_torch(
            checkpoint_path(self.folder, self.cell.id),
            {
                "run_id": self.context["run_id"],
                "step": next_step,
                "theta": {k: v.detach().clone() for k, v in self.theta.items()},
                "optimizer": self.optimizer.state_dict(),
                "records": self.records,
                "trajectory": self.trajectory,
                "unconverged": self.unconverged,
                "unconverged_streak": self.unconverged_streak,
            },
        )

    # ----------------------------------------------------------------- steps
    def record(self, step: int, metric: str, value: float, unit: str = "") -> None:
        self.records.append((step, metric, float(value), unit))

    def evaluate(self, step: int) -> None:
        """Test error and a parameter snapshot at ``step`` (before that step's update)."""
        self.record(step, "test_error", self.model.test_error(self.theta, self.test), "rms")
        self.trajectory["steps"].append(step)
        self.trajectory["theta"].append({k: v.detach().clone() for k, v in self.theta.items()})

    def step(self, step: int) -> bool:
        """One Adam step, recorded; False when the cell must stop (recorded why)."""
        if step % self.settings.eval_interval == 0:
            self.evaluate(step)
        gradient, seconds, memory = timed_gradient(self.model, self.theta, self.settings, self.backend)
        terms = self.model.loss_terms(self.theta)
        total = sum(v for k, v in terms.items() if k != "data") + self.settings.data_weight * terms.get(
            "data", 0
        )
        self.record(step, "loss", total)
        for name, value in terms.items():
            self.record(step, f"loss:{name}", value)
        bad = not_finite({"loss": total}, gradient)
        if bad:
            self.status, self.message = Status.ERROR, f"step {step}: not finite: {bad}"
            return False
        norm = math.sqrt(sum(float(g.square().sum()) for g in gradient.values.values()))
        self.record(step, "gradient_norm", norm)
        for name, value in gradient.solver.items():
            self.record(step, name, value, "" if name == "converged" else "count")
        converged = gradient.solver.get("converged", 1.0) != 0
        self.unconverged += not converged
        self.unconverged_streak = 0 if converged else self.unconverged_streak + 1
        diverged = self.divergence(step, total)
        if diverged:
            self.status, self.message = Status.DIVERGED, diverged
            return False
        seconds += timed_update(self.optimizer, self.theta, gradient, self.settings)
        self.record(step, "step_time", seconds, "s")
        self.record(step, memory.metric, memory.peak_bytes, "bytes")
        return True

    def first_loss(self) -> float:
        return next(value for _, metric, value, _ in self.records if metric == "loss")

    def divergence(self, step: int, loss: float) -> str:
        """Why training has diverged by ``step`` ("" when it has not): its loss has grown by
        orders of magnitude, or its solves have stopped converging."""
        first = self.first_loss()
        if loss > DIVERGED_LOSS_GROWTH * first:
            return f"step {step}: loss {loss:.3g} above {DIVERGED_LOSS_GROWTH:g} x its first {first:.3g}"
        if self.unconverged_streak >= DIVERGED_UNCONVERGED_STREAK:
            return (
                f"step {step}: the solves did not converge in {self.unconverged_streak} steps in a row "
                f"(since step {step - self.unconverged_streak + 1})"
            )
        return ""

    def train(self, progress) -> pd.DataFrame:
        """Every step not yet done (from a checkpoint, if any); the cell's rows."""
        compile_seconds = self.model.compile()  # JAX: compiled before the first timed step
        if not self.restore() and compile_seconds is not None:
            self.record(0, "compile_time", compile_seconds, "s")
        progress.advance(self.start)
        self.steps_done = self.start
        steps = self.settings.step_count
        for step in range(self.start, steps):
            try:
                keep_going = self.step(step)
            except Exception as error:  # noqa: BLE001 - a step that raises ends its cell only
                self.status, self.message = Status.ERROR, f"step {step}: {one_line(error)}"
                keep_going = False
            if not keep_going:
                break
            progress.advance(1)
            self.steps_done = step + 1
            if (step + 1) % self.settings.checkpoint_interval == 0 and step + 1 < steps:
                self.checkpoint(step + 1)
        else:
            self.evaluate(steps)  # the trained model
        self.record(self.settings.step_count, "steps_done", self.steps_done, "count")
        if self.unconverged and self.status == Status.OK:
            self.message = f"{self.unconverged} step(s) had a solve that did not converge"
        return self.rows()

    # ------------------------------------------------------------------- rows
    def identity(self) -> dict[str, Any]:
        strategy = getattr(self.model, "strategy", None)
        solver = strategy.settings(self.problem.dtype) if strategy else {}
        claims = strategy is None or "pinn_grad" in strategy.exact_queries
        return {
            "run_id": self.context["run_id"],
            "cell": self.cell.id,
            "strategy": self.cell.strategy_name,
            "backend": self.backend,
            "problem": self.cell.problem_name,
            "query": TRAIN_QUERY,
            "preset": self.settings.preset,
            "size": format_size(self.problem.size),
            "device": self.settings.device,
            "dtype": self.settings.dtype,
            "status": str(self.status),
            "expected_exact": claims,
            "message": self.message,
            "oracle": "",
            "oracle_method": "",
            "tol": math.nan,
            "f_solver": solver.get("f_solver", ""),
            "b_solver": solver.get("b_solver", ""),
            "f_tol": solver.get("f_tol", math.nan),
            "b_tol": solver.get("b_tol", math.nan),
            "f_max_iter": solver.get("f_max_iter", 0),
            "b_max_iter": solver.get("b_max_iter", 0),
            "seed": self.cell.seed,
            **self.context["metadata"],
            "timestamp": results.utc_now(),
        }

    def rows(self) -> pd.DataFrame:
        frame = results.cell_rows(
            self.identity(), [Metric(metric, value, unit) for _, metric, value, unit in self.records]
        )
        frame["step"] = pd.Series([step for step, *_ in self.records], dtype="int64")
        return frame[TRAIN_COLUMNS]

    def finish(self, rows: pd.DataFrame) -> None:
        """The trajectory, then the cell file (which marks the cell done), then no checkpoint."""
        save_torch(trajectory_path(self.folder, self.cell.id), self.trajectory)
        self.folder.write_cell(self.cell.id, rows)
        for name in (safe_name, legacy_safe_name):
            checkpoint_path(self.folder, self.cell.id, name).unlink(missing_ok=True)


# ------------------------------------------------------------------ the run
class SilentSteps:
    """What the run loop tells as cells start and steps finish (here: nothing)."""

    def start(self, total_steps: int) -> None:
        pass

    def cell(self, cell_id: str) -> None:
        pass

    def advance(self, steps: int) -> None:
        pass

    def finished(self, cell_id: str, status: str, message: str) -> None:
        pass


def context_of(settings: TrainSettings, run: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(settings.device)
    metadata = {
        **results.run_metadata(),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
    }
    return {"run_id": run["run_id"], "metadata": metadata}


def execute_training(
    settings: TrainSettings, folder: RunFolder, run: dict[str, Any], progress=None
) -> pd.DataFrame:
    """Train every cell not yet in the folder, writing each as it finishes; all rows after.

    Raises BadInput when another process writes the folder, RunAborted when a finished cell
    cannot be written (the cells and checkpoints written so far are kept for --resume).
    """
    progress = progress or SilentSteps()
    try:
        with threads_restored(), folder.lock():
            use_threads(settings.threads, one_cpu=on_cpu(settings.device))  # times compare: XLA's pool too
            folder.remove_partial_files()
            done = folder.finished()
            todo = [cell for cell in plan_cells(settings) if cell.id not in done]
            context = context_of(settings, run)
            progress.start(len(todo) * settings.step_count)
            for cell in todo:
                progress.cell(cell.id)
                training = CellTraining(cell, settings, folder, context)
                rows = training.train(progress)
                write_cell(training, rows, folder)
                progress.finished(cell.id, str(training.status), training.message)
    except FolderInUse as error:
        raise BadInput(str(error)) from None
    return folder.read()


def write_cell(training: CellTraining, rows: pd.DataFrame, folder: RunFolder) -> None:
    try:
        training.finish(rows)
    except OSError as error:
        raise RunAborted(
            f"cannot write cell {training.cell.id} to {folder.path}: {error.strerror or error}; "
            f"finished cells and checkpoints are kept: deqbench train --resume {folder.path}"
        ) from None


def stopped_exact_cells(rows: pd.DataFrame) -> list[str]:
    """Cells of a strategy claiming its gradient exact that did not train to the end."""
    cells = rows.drop_duplicates("cell")
    return list(cells[cells["expected_exact"] & (cells["status"] != Status.OK)]["cell"])


def train(
    strategies: str = "analytic,iterative-backward,unrolled,implicit-vjp",
    problems: str = "vanderpol",
    *,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    trust: bool = False,
    **settings: Any,
) -> pd.DataFrame:
    """``deqbench train`` from Python: the rows of every cell (one per cell, step and metric).

    ``settings`` are the options of ``deqbench train`` by their field names in
    :class:`~deqbench.harness.train.settings.TrainSettings` (``steps``, ``seeds``, ``lr``,
    ``data_weight``, ``quick``, ...). Bad input raises BadInput before anything is written.
    """
    from deqbench.harness.train.settings import make_train_settings

    if resume is not None:
        train_settings, folder, run = resume_training(resume, trust, notify_on_stderr)
    else:
        train_settings = make_train_settings(strategies=strategies, problems=problems, **settings)
        folder, run = new_training(train_settings, out)
    return execute_training(train_settings, folder, run)
