"""The ``deqbench`` command: run the matrix, list what is installed, show and export runs.

Exit codes: 0 when every cell whose query its strategy claims exact verified; 1 when one of
them is wrong, diverged or raised, or was stopped before it could be checked; 2 on bad
input (one line on stderr, nothing written) or a results folder that cannot be written.
"""

from __future__ import annotations

import warnings

import click

from deqbench._version import __version__
from deqbench.harness.cli.cache import cache
from deqbench.harness.cli.compare import compare_command
from deqbench.harness.cli.export import export_command
from deqbench.harness.cli.list import list_command
from deqbench.harness.cli.report import report_command
from deqbench.harness.cli.run import run_command
from deqbench.harness.cli.show import show_command
from deqbench.harness.cli.train import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="deqbench")
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


for command in (
    run_command,
    list_command,
    show_command,
    export_command,
    report_command,
    compare_command,
    train_command,
    cache,
):
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    main()
