"""``deqbench train``: the click command (registered by :mod:`.cli`) and its progress bar.

Exit codes: 0 when every cell of a strategy that claims its gradient exact trained to the
end; 1 when one of them stopped (a step raised, or its loss or gradient was not finite);
2 on bad input (one line on stderr, nothing written) or a folder that cannot be written;
130 when interrupted (the finished cells and every cell's last checkpoint are kept).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress

from deqbench.harness.cli.common import (
    EXIT_FAILED,
    executing,
    interrupt_on_termination,
    out_option,
    resume_option,
    settings_options,
    start_or_resume,
    trust_option,
    trusting,
)
from deqbench.harness.run.progress import progress_columns
from deqbench.harness.train.settings import train_options


class StepProgress:
    """A rich progress bar on stderr over every step of the run; a cell that stops early
    is printed above it with its message."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(*progress_columns(), console=self.console, transient=True)
        self.task = None

    def __enter__(self) -> StepProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def start(self, total_steps: int) -> None:
        self.task = self.progress.add_task("", total=total_steps)

    def cell(self, cell_id: str) -> None:
        self.progress.update(self.task, description=cell_id)

    def advance(self, steps: int) -> None:
        self.progress.advance(self.task, steps)

    def finished(self, cell_id: str, status: str, message: str) -> None:
        if status != "ok":
            self.console.print(f"{cell_id}: {status}: {message}", style="bold red", highlight=False)


def train_settings_options(command):
    """The options of :class:`~deqbench.harness.train.settings.TrainSettings`."""
    return settings_options(command, train_options)


@click.command("train")
@train_settings_options
@out_option
@resume_option(
    "Finish an interrupted training run: its settings come from DIR/run.json; finished cells "
    "are kept, the others continue from their last checkpoint."
)
@trust_option
@click.pass_context
def train_command(ctx: click.Context, out: Path | None, resume: Path | None, trust: bool, **given) -> None:
    """Train a physics-informed DEQ with each strategy's gradient, and a plain PINN.

    Adam on the physics loss (the ODE residual at the collocation points and the
    initial-condition term) plus --data-weight times the data loss, from the same initial
    parameters per seed for every strategy. Each step records every loss term, its wall
    time and peak memory, forward and backward solver iterations; every --eval-every steps
    the test error against the ODE reference on a grid of --test-points. Rows are tidy
    parquet, one per (cell, step, metric), in a run folder `deqbench report` reads
    (loss against step and wall time, test error against wall time, parameter drift from
    the exact strategies, and the final table). A step that raises or a loss that is not
    finite stops that cell only; --resume continues a killed run from its checkpoints.

    The default setting is the PIDEQ work's Van der Pol task (mu = 1, t in [0, 2],
    y0 = (0, 0.1)), trained on the initial condition and the physics alone.

    \b
    Examples:
      deqbench train --quick
      deqbench train -p vanderpol -s analytic,iterative-backward,unrolled,implicit-vjp --steps 300 --seeds 3
      deqbench train --resume results/20261202-101500-1a2b3c
    """
    from deqbench.harness.train import loop as train

    interrupt_on_termination()

    def new_training():
        from deqbench.harness.train.settings import make_train_settings

        settings = make_train_settings(**given)
        return (settings, *train.new_training(settings, out))

    settings, folder, record, console = start_or_resume(
        ctx, resume, train_options(), trusting(train.resume_training, trust), new_training
    )
    with executing(folder, "train", kept="finished cells and checkpoints"), StepProgress() as progress:
        rows = train.execute_training(settings, folder, record, progress)
    from deqbench.harness.train.report import print_final_table
    from deqbench.harness.train.tables import final_table

    print_final_table(final_table(rows, [folder.path]), console)
    console.print(f"results: {folder.path}  (deqbench report {folder.path} --out DIR)", highlight=False)
    sys.exit(EXIT_FAILED if train.stopped_exact_cells(rows) else 0)
