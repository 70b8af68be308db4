"""The ``deqbench`` command: run the matrix, list what is installed, show and export runs.

Exit codes: 0 when every cell whose query its strategy claims exact verified; 1 when one of
them is wrong, diverged or raised; 2 on bad input (one line on stderr, nothing written).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

import deqbench
from deqbench.harness import results, runner, summary
from deqbench.harness.runner import BadInput

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def stdout_console() -> Console:
    """Wide when writing to a file or CI log (rich assumes 80 columns there)."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit code 2."""
    click.echo(f"deqbench: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(deqbench.__version__, prog_name="deqbench")
def main() -> None:
    """Which way of differentiating a deep equilibrium model is right, and what it costs.

    `deqbench run` measures every cell of the strategy x problem x query matrix (accuracy
    against an independent oracle, time, memory, solver iterations), each in a process of
    its own, and keeps every finished cell in a results folder. `deqbench list` shows what
    can be run; `deqbench show DIR` and `deqbench export DIR` read a run back.
    """


# ------------------------------------------------------------------------ run
class ProgressReporter:
    """A rich progress bar on stderr: the current cell, cells done, elapsed time and ETA.

    Cells that are not ok (nor unsupported) are printed above the bar as they finish.
    """

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = None

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def started(self, planned, index: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, description=planned.cell.id)

    def finished(self, planned, status: str) -> None:
        if status not in (results.OK, results.UNSUPPORTED):
            style = summary.cell_style(status, planned.cell.expected_exact)
            self.console.print(f"{planned.cell.id}: {status}", style=style, highlight=False)
        self.progress.advance(self.task)


MATRIX_OPTIONS = (
    "strategy",
    "problem",
    "query",
    "size",
    "quick",
    "device",
    "dtype",
    "seed",
    "repeats",
    "warmup",
    "f_tol",
    "b_tol",
    "f_max_iter",
    "b_max_iter",
    "timeout",
    "tol",
    "threads",
    "max_memory",
    "out",
)


@main.command("run")
@click.option(
    "--strategy",
    "-s",
    default="all",
    show_default=True,
    help="Strategy names, comma-separated, 'all', or path/to/file.py:Class.",
)
@click.option(
    "--problem",
    "-p",
    default="all",
    show_default=True,
    help="Problem names, comma-separated, 'all', or path/to/file.py:Class (your own Problem).",
)
@click.option(
    "--query",
    "-q",
    default="all",
    show_default=True,
    help="Queries, comma-separated, or 'all' (see `deqbench list`).",
)
@click.option(
    "--size",
    default=None,
    metavar="SIZE",
    help="A size preset (quick, default, large), knob=value overrides such as "
    "m=256,batch=128, or both ('large,batch=8'). An override applies to the problems "
    "that have that knob. [default: default, or quick with --quick]",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"Small and fast: the quick preset, {runner.QUICK['warmup']} warm-up run and "
    f"{runner.QUICK['repeats']} timed repeats (what CI runs).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--dtype", default="float64", show_default=True, help="float64 or float32.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the problem instances.")
@click.option(
    "--repeats",
    type=int,
    default=None,
    help=f"Timed repeats per cell (median and IQR). [default: {runner.FULL['repeats']}]",
)
@click.option(
    "--warmup",
    type=int,
    default=None,
    help=f"Untimed runs before measuring. [default: {runner.FULL['warmup']}]",
)
@click.option(
    "--f-tol",
    type=float,
    default=None,
    help="Forward solver tolerance (relative residual). [default: 1e-10; 1e-5 in float32]",
)
@click.option(
    "--b-tol",
    type=float,
    default=None,
    help="Backward (linear) solver tolerance. [default: 1e-10; 1e-5 in float32]",
)
@click.option("--f-max-iter", type=int, default=500, show_default=True, help="Forward solver iteration cap.")
@click.option("--b-max-iter", type=int, default=500, show_default=True, help="Backward solver iteration cap.")
@click.option(
    "--tol",
    type=float,
    default=None,
    help="A cell is 'wrong' when its worst relative error against the oracle exceeds "
    "this. [default: 1e-6; 1e-2 in float32]",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Seconds a cell may take before its worker is killed ('timeout'). [default: none]",
)
@click.option("--threads", type=int, default=None, help="torch threads in each worker. [default: torch's]")
@click.option(
    "--max-memory",
    default=None,
    metavar="BYTES",
    help="Stop a cell whose resident memory passes this (e.g. 8G, 512M; 'none': no cap) and "
    "record it as oom. [default: 90% of the memory available at the start]",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Results folder, new or empty. [default: results/<timestamp>-<id>]",
)
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Finish an interrupted run: its settings come from DIR/run.json, finished "
    "cells are kept, the others run. Takes no other matrix option.",
)
@click.pass_context
def run_command(ctx: click.Context, resume: Path | None, **options) -> None:
    """Measure the strategy x problem x query matrix, cell by cell.

    Each cell runs in a worker process of its own: the problem is built, warmed up, then
    measured once for memory (peak resident set over the warmed-up baseline, or CUDA
    allocator peak; bytes autograd saved) and `--repeats` times for time. Its answer is
    compared with the oracle's (cached on disk, in $DEQBENCH_CACHE_DIR or
    ~/.cache/deqbench/oracle). Every finished cell is written at once, as parquet, to the
    results folder: a killed run loses only the cell in flight (`--resume DIR`).

    A cell's status is ok, wrong (error above --tol), diverged (a solve did not converge),
    unsupported, error (raised), timeout or oom. The exit code is 1 when a strategy is
    wrong, diverged or raised on a query it claims exact; wrong answers on queries a
    strategy does not claim are reported, highlighted, but do not fail the run.

    \b
    Examples:
      deqbench run --strategy all --quick
      deqbench run -s analytic,unrolled -p tanh -q pinn_grad --size m=256,batch=128
      deqbench run -p my_problem.py:MyProblem --quick
    """
    try:
        if resume is not None:
            given = [o for o in MATRIX_OPTIONS if ctx.get_parameter_source(o) != ParameterSource.DEFAULT]
            if given:
                flags = ", ".join("--" + o.replace("_", "-") for o in given)
                raise BadInput(f"--resume takes its settings from DIR/run.json; drop {flags}")
            settings, folder, record = runner.resume_settings(resume)
        else:
            settings, folder, record = new_run(options)
    except BadInput as error:
        fail(str(error))
    console = stdout_console()
    console.print(f"results: {folder.path}", highlight=False)
    if resume is not None:
        done, total = len(folder.finished()), len(record.get("cells", []))
        console.print(f"resuming: {done} of {total} cells already finished", highlight=False)
    try:
        with ProgressReporter() as reporter:
            rows = runner.execute(settings, folder, record, reporter=reporter)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: finished cells are in {folder.path}; deqbench run --resume {folder.path}", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
    summary.print_summary(rows, console)
    console.print(f"results: {folder.path}", highlight=False)
    sys.exit(EXIT_FAILED if len(results.failed_cells(rows)) else 0)


def new_run(options: dict) -> tuple:
    settings = runner.make_settings(
        options["strategy"],
        options["problem"],
        options["query"],
        size=options["size"],
        quick=options["quick"],
        device=options["device"],
        dtype=options["dtype"],
        seed=options["seed"],
        warmup=options["warmup"],
        repeats=options["repeats"],
        f_tol=options["f_tol"],
        b_tol=options["b_tol"],
        f_max_iter=options["f_max_iter"],
        b_max_iter=options["b_max_iter"],
        timeout=options["timeout"],
        tol=options["tol"],
        threads=options["threads"],
        max_memory=options["max_memory"],
    )
    out = runner.prepare_out(options["out"])
    planned = runner.checked_plan(settings)
    folder, record = runner.create_run(settings, out, [p.cell for p in planned])
    return settings, folder, record


# ----------------------------------------------------------------------- list
@main.command("list")
def list_command() -> None:
    """Strategies (backend, queries), problems (sizes, directions, queries) and queries."""
    from deqbench.harness.matrix import problem_names, strategy_names
    from deqbench.problems.base import PROBLEMS, supported_queries
    from deqbench.queries import QUERIES
    from deqbench.strategies.base import STRATEGIES

    console = stdout_console()
    strategies = Table(title="strategies", title_justify="left")
    for column in ("name", "backend", "supports", "claims exact", "description"):
        strategies.add_column(column)
    for name in strategy_names():
        cls = STRATEGIES.get(name)
        supported = [q for q in QUERIES if q in cls.supported_queries]
        exact = [q for q in QUERIES if q in cls.exact_queries]
        exact_text = "all supported" if exact == supported else ", ".join(exact) or "none"
        strategies.add_row(name, cls.backend, ", ".join(supported), exact_text, cls.description)
    console.print(strategies)

    problems = Table(title="problems", title_justify="left")
    for column in ("name", "sizes", "directions", "queries (quick)", "description"):
        problems.add_column(column)
    for name in problem_names():
        cls = PROBLEMS.get(name)
        sizes = "\n".join(f"{preset}: {results.format_size(knobs)}" for preset, knobs in cls.presets.items())
        instance = cls("quick" if "quick" in cls.presets else next(iter(cls.presets)))
        directions = ", ".join(instance.directions)
        problems.add_row(name, sizes, directions, ", ".join(supported_queries(instance)), cls.description)
    console.print(problems)

    queries = Table(title="queries", title_justify="left")
    for column in ("name", "order", "description"):
        queries.add_column(column)
    for query in QUERIES.values():
        queries.add_row(query.name, str(query.order), query.description)
    console.print(queries)


# ----------------------------------------------------------------- show, export
def open_run(directory: Path) -> results.RunFolder:
    folder = results.RunFolder(directory)
    if not folder.exists():
        fail(f"{directory}: no {results.RUN_FILE} there; accepted: a folder made by deqbench run")
    return folder


@main.command("show")
@click.argument("directory", type=click.Path(path_type=Path))
def show_command(directory: Path) -> None:
    """The summary table of an existing run (finished cells so far)."""
    folder = open_run(directory)
    rows = folder.read()
    console = stdout_console()
    planned = folder.load().get("cells", [])
    finished = results.cell_statuses(rows)["cell"].nunique() if not rows.empty else 0
    if finished < len(planned):
        console.print(
            f"{finished} of {len(planned)} cells finished; `deqbench run --resume {directory}` runs the rest",
            style="yellow",
            highlight=False,
        )
    summary.print_summary(rows, console)


@main.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the default when no format is given).")
@click.option("--parquet", "as_parquet", is_flag=True, help="Write one parquet file.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="File to write. [default: DIR/results.csv or DIR/results.parquet]",
)
def export_command(directory: Path, as_csv: bool, as_parquet: bool, output: Path | None) -> None:
    """All rows of a run in one file: every finished cell, one row per (cell, metric)."""
    folder = open_run(directory)
    if as_csv and as_parquet and output is not None:
        fail("--output names one file; give --csv or --parquet, not both")
    rows = folder.read()
    formats = [f for f, wanted in (("csv", as_csv), ("parquet", as_parquet)) if wanted] or ["csv"]
    for fmt in formats:
        path = output or folder.path / f"results.{fmt}"
        try:
            rows.to_csv(path, index=False) if fmt == "csv" else rows.to_parquet(path, index=False)
        except OSError as error:
            fail(f"cannot write {path}: {error.strerror or error}")
        click.echo(f"{len(rows)} rows -> {path}")


if __name__ == "__main__":  # pragma: no cover
    main()
