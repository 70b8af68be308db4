"""``deqbench show DIR``: a run's summary table, or a training run's final table."""

from __future__ import annotations

from pathlib import Path

import click

from deqbench.harness.cli.common import open_run, stdout_console
from deqbench.harness.report import summary
from deqbench.harness.results import rows as results


@click.command("show")
@click.argument("directory", type=click.Path(path_type=Path))
def show_command(directory: Path) -> None:
    """The summary table of an existing run (finished cells so far); of a training run, its
    final table."""
    folder = open_run(directory)
    rows = folder.read()
    console = stdout_console()
    if folder.load().get("kind") == "train":  # a training run (deqbench train): its final table
        from deqbench.harness.train.report import print_final_table
        from deqbench.harness.train.tables import final_table

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
