"""``deqbench run``: measure the strategy x problem x query matrix, cell by cell."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from deqbench.harness.cli.common import (
    EXIT_FAILED,
    executing,
    fail,
    interrupt_on_termination,
    out_option,
    resume_option,
    settings_options,
    start_or_resume,
    trust_option,
    trusting,
)
from deqbench.harness.options import BadInput
from deqbench.harness.report import summary
from deqbench.harness.results import rows as results
from deqbench.harness.run import runner
from deqbench.harness.run.executors import check_executor, make_executor
from deqbench.harness.run.progress import terminal_or_lines
from deqbench.harness.run.settings import ToleranceWarning, make_settings, options


@click.command("run")
@settings_options
@out_option
@resume_option(
    "Finish an interrupted run: its settings, and the strategy and problem files it names, "
    "come from DIR/run.json; finished cells are kept, the others run."
)
@trust_option
@click.option(
    "--jobs",
    "-j",
    default=None,
    metavar="N|auto",
    help="Cells at once on this machine, each in worker processes kept to a CPU of its own (as "
    "--threads 1 keeps one); auto: one per CPU. Above 1, cells share memory bandwidth and caches, "
    "so their times are those of a busy machine: every row records it (parallel_cells). Allowed "
    "with --resume. [default: 1, one cell after another]",
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
    trust: bool,
    out: Path | None,
    executor: str,
    scheduler: str | None,
    workers: int | None,
    jobs: str | None,
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
      deqbench run --strategy all --quick --jobs auto
      deqbench run --quick --executor dask --workers 4
    """
    interrupt_on_termination()
    try:
        cell_executor = make_executor(executor, scheduler, workers, jobs)
    except BadInput as error:
        fail(str(error))

    def new_run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ToleranceWarning)
            try:
                settings = make_settings(**given)
            finally:  # one line each, like bad input, and before it
                for warning in caught:
                    click.echo(f"deqbench: warning: {warning.message}", err=True)
        check_executor(cell_executor, settings)
        return (settings, *runner.new_run(settings, out))

    def resume_run(path, trust, notify):
        settings, folder, record = runner.resume_settings(path, trust, notify)
        check_executor(cell_executor, settings)
        return settings, folder, record

    settings, folder, record, console = start_or_resume(
        ctx, resume, options(), trusting(resume_run, trust), new_run
    )
    with executing(folder, "run"), terminal_or_lines() as reporter:
        rows = runner.execute(settings, folder, record, reporter=reporter, executor=cell_executor)
    summary.print_summary(rows, console)
    console.print(summary.next_command(folder.path), highlight=False, soft_wrap=True)
    failing = len(results.failed_cells(rows)) + len(results.unverified_cells(rows))
    sys.exit(EXIT_FAILED if failing else 0)
