"""The ``deqbench`` command: run the matrix, list what is installed, show and export runs.

Exit codes: 0 when every cell whose query its strategy claims exact verified; 1 when one of
them is wrong, diverged or raised, or was stopped before it could be checked; 2 on bad
input (one line on stderr, nothing written) or a results folder that cannot be written.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click
from rich.table import Table

import deqbench
from deqbench.harness.cli.cache import cache
from deqbench.harness.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    fail,
    interrupt_on_termination,
    out_option,
    settings_options,
    start_or_resume,
    stdout_console,
)
from deqbench.harness.cli.report import compare_command, report_command
from deqbench.harness.cli.train import train_command
from deqbench.harness.report import summary
from deqbench.harness.results import rows as results
from deqbench.harness.results.run_folder import RUN_FILE, RunFolder, UnreadableRun
from deqbench.harness.run import runner
from deqbench.harness.run.executors import make_executor
from deqbench.harness.run.progress import ProgressReporter
from deqbench.harness.run.settings import BadInput, make_settings, options


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(deqbench.__version__, prog_name="deqbench")
def main() -> None:
    """Which way of differentiating a deep equilibrium model is right, and what it costs.

    `deqbench run` measures every cell of the strategy x problem x query matrix (accuracy
    against an independent oracle, time, memory, solver iterations), each in a process of
    its own, and keeps every finished cell in a results folder. `deqbench list` shows what
    can be run; `deqbench show DIR` and `deqbench export DIR` read a run back;
    `deqbench cache info|clear` looks after the oracle's answers.
    """
    warnings.showwarning = one_line_warning


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a skipped cell file, a rebuilt cache entry) as one line on stderr."""
    click.echo(f"deqbench: warning: {message}", err=True)


# ------------------------------------------------------------------------ run
@main.command("run")
@settings_options
@out_option
@click.option(
    "--resume",
    type=click.Path(path_type=Path),
    default=None,
    help="Finish an interrupted run: its settings, and the strategy and problem files it names, "
    "come from DIR/run.json; finished cells are kept, the others run. Takes no other option.",
)
@click.option(
    "--executor",
    default="local",
    show_default=True,
    metavar="local|dask",
    help="Who runs the cells: local (this machine, one after another) or dask (a dask.distributed "
    "cluster; the parent writes each cell as it arrives). Allowed with --resume.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="With --executor dask: the scheduler to use (tcp://host:8786). [default: a LocalCluster]",
)
@click.option(
    "--workers",
    default=None,
    type=int,
    metavar="N",
    help="With --executor dask and no --scheduler: worker processes of the LocalCluster. "
    "[default: half the CPU cores]",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    resume: Path | None,
    out: Path | None,
    executor: str,
    scheduler: str | None,
    workers: int | None,
    **given,
) -> None:
    """Measure the strategy x problem x query matrix, cell by cell.

    Each cell runs in worker processes of its own: the problem is built, warmed up, then
    measured once for memory (peak resident set over the warmed-up baseline, or CUDA
    allocator peak), once for the bytes autograd saves, and `--repeats` times for time. Its
    answer is compared with the oracle's (cached on disk under a fingerprint of the
    problem's numbers: `deqbench cache info`). Every finished cell is written at once, as
    parquet, to the results folder: a killed run loses only the cell in flight (`--resume
    DIR`). A folder is locked while a run writes to it.

    A cell's status is ok, wrong (error above --tol), diverged (a solve did not converge),
    unsupported, error (raised), timeout, oom or killed (by a signal from outside). The
    exit code is 1 when a strategy is wrong, diverged or raised on a query it claims exact,
    or such a cell was stopped (timeout, oom, killed) before it could be checked; wrong
    answers on queries a strategy does not claim are reported, highlighted, but do not fail
    the run. Exit code 2: bad input (one line, nothing written) or a results folder that
    cannot be written; 130: interrupted.

    \b
    Examples:
      deqbench run --strategy all --quick
      deqbench run -s analytic,unrolled -p tanh -q pinn_grad --size m=256,batch=128
      deqbench run -p my_problem.py:MyProblem --quick
      deqbench run --resume results/20261202-101500-1a2b3c
      deqbench run --quick --executor dask --workers 4
    """
    interrupt_on_termination()
    try:
        cell_executor = make_executor(executor, scheduler, workers)
    except BadInput as error:
        fail(str(error))

    def new_run():
        settings = make_settings(**given)
        return (settings, *runner.new_run(settings, out))

    settings, folder, record, console = start_or_resume(
        ctx, resume, options(), runner.resume_settings, new_run
    )
    try:
        with ProgressReporter() as reporter:
            rows = runner.execute(settings, folder, record, reporter=reporter, executor=cell_executor)
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: finished cells are in {folder.path}; deqbench run --resume {folder.path}", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
    except (BadInput, runner.RunAborted) as error:
        fail(str(error))
    summary.print_summary(rows, console)
    console.print(f"results: {folder.path}", highlight=False)
    failing = len(results.failed_cells(rows)) + len(results.unverified_cells(rows))
    sys.exit(EXIT_FAILED if failing else 0)


# ----------------------------------------------------------------------- list
def physics_partials_text(problem) -> str:
    """The named partials each physics query's loss uses, one line a query ("" for none)."""
    lines = []
    for query in ("pinn_grad", "pinn2_grad"):
        loss, partials = problem.physics_query(query)
        if loss is not None:
            lines.append(f"{query}: " + ", ".join("".join(index) for index in partials.values()))
    return "\n".join(lines)


@main.command("list")
def list_command() -> None:
    """Strategies (backend, queries), problems (sizes, directions, queries) and queries."""
    from deqbench.backends import jax_unavailable_reason
    from deqbench.harness.run.matrix import problem_names, strategy_names
    from deqbench.problems.base import PROBLEMS, supported_queries
    from deqbench.queries import QUERIES
    from deqbench.strategies.base import STRATEGIES

    console = stdout_console()
    strategies = Table(title="strategies", title_justify="left")
    for column in ("name", "backend", "library", "supports", "claims exact", "description"):
        strategies.add_column(column)
    for name in strategy_names():
        cls = STRATEGIES.get(name)
        supported = [q for q in QUERIES if q in cls.supported_queries]
        exact = [q for q in QUERIES if q in cls.exact_queries]
        exact_text = "all supported" if exact == supported else ", ".join(exact) or "none"
        backend = cls.backend
        if backend == "jax" and jax_unavailable_reason() is not None:
            backend += f" (unavailable: {jax_unavailable_reason()})"
        strategies.add_row(
            name, backend, library_text(cls), ", ".join(supported), exact_text, cls.description
        )
    console.print(strategies)

    problems = Table(title="problems", title_justify="left")
    for column in ("name", "sizes", "backends", "directions", "queries (quick)", "partials", "description"):
        problems.add_column(column)
    for name in problem_names():
        cls = PROBLEMS.get(name)
        sizes = "\n".join(f"{preset}: {results.format_size(knobs)}" for preset, knobs in cls.presets.items())
        instance = cls("quick" if "quick" in cls.presets else next(iter(cls.presets)))
        directions = ", ".join(instance.directions)
        backends = ", ".join(cls.backends)
        queries_text = ", ".join(supported_queries(instance))
        partials = physics_partials_text(instance)
        problems.add_row(name, sizes, backends, directions, queries_text, partials, cls.description)
    console.print(problems)

    queries = Table(title="queries", title_justify="left")
    for column in ("name", "order", "description"):
        queries.add_column(column)
    for query in QUERIES.values():
        queries.add_row(query.name, str(query.order), query.description)
    console.print(queries)


def library_text(cls) -> str:
    """deqbench for our own strategies; a peer's library and version, and why it is
    unavailable here if it is."""
    if cls.peer is None:
        return "deqbench"
    reason = cls.unavailable_reason()
    return cls.peer if reason is None else f"{cls.peer} (unavailable: {reason})"


# ----------------------------------------------------------------- show, export
def open_run(directory: Path) -> RunFolder:
    """A run folder to read, with a readable run.json (else one line and exit 2)."""
    folder = RunFolder(directory)
    if not folder.exists():
        fail(f"{directory}: no {RUN_FILE} there; accepted: a folder made by deqbench run")
    try:
        folder.load()
    except UnreadableRun as error:
        fail(str(error))
    return folder


@main.command("show")
@click.argument("directory", type=click.Path(path_type=Path))
def show_command(directory: Path) -> None:
    """The summary table of an existing run (finished cells so far); of a training run, its
    final table."""
    folder = open_run(directory)
    rows = folder.read()
    console = stdout_console()
    if folder.load().get("kind") == "train":  # a training run (deqbench train): its final table
        from deqbench.harness.train.report import final_table, print_final_table

        return print_final_table(final_table(rows, [folder.path]), console) if not rows.empty else None
    planned = folder.load()["cells"]
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


main.add_command(cache)
main.add_command(report_command)
main.add_command(compare_command)
main.add_command(train_command)


if __name__ == "__main__":  # pragma: no cover
    main()
