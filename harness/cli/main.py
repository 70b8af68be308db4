"""The ``deqbench`` command: run the matrix, list what is installed, show and export runs.

Exit codes: 0 when every cell whose query its strategy claims exact verified; 1 when one of
them is wrong, diverged or raised, or was stopped before it could be checked; 2 on bad
input (one line on stderr, nothing written) or a results folder that cannot be written.

The group is lazy: a command's module (and with it torch, pandas, JAX) is imported only
when that command runs, so ``deqbench --version`` and ``deqbench --help`` answer at once.
Each command's one-line summary lives here (:data:`COMMANDS`) for ``--help`` to list.
"""

from __future__ import annotations

import importlib
import warnings

import click

from deqbench._version import __version__

#: Command name -> (module:attribute of its click command, its one-line summary for --help).
#: A test checks each summary against the first line of the command's own help.
COMMANDS = {
    "run": ("run:run_command", "Measure the strategy x problem x query matrix, cell by cell."),
    "list": (
        "list:list_command",
        "Strategies (backend, queries), problems (sizes, directions, queries) and queries.",
    ),
    "show": (
        "show:show_command",
        "The summary table of an existing run (finished cells so far); of a training run, its final table.",
    ),
    "export": (
        "export:export_command",
        "All rows of a run in one file: every finished cell, one row per (cell, metric).",
    ),
    "report": (
        "report:report_command",
        "Figures, a Markdown summary and a self-contained HTML page from one or more runs.",
    ),
    "compare": (
        "compare:compare_command",
        "Two runs side by side: B / A for time, memory and error of the cells they share.",
    ),
    "train": (
        "train:train_command",
        "Train a physics-informed DEQ with each strategy's gradient, and a plain PINN.",
    ),
    "cache": ("cache:cache", "The oracle's disk cache of answers, and JAX's compiled programs."),
}


class LazyGroup(click.Group):
    """A click group whose commands are imported only when one of them is run (or its help
    asked for); ``--help`` lists them from :data:`COMMANDS` without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return load_command(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def load_command(name: str) -> click.Command:
    """The click command ``name``, its module imported now."""
    target, _ = COMMANDS[name]
    module, attribute = target.split(":")
    return getattr(importlib.import_module(f"deqbench.harness.cli.{module}"), attribute)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="deqbench")
def main() -> None:
    """Which way of differentiating a deep equilibrium model is right, and what it costs.

    `deqbench run` measures every cell of the strategy x problem x query matrix (accuracy
    against an independent oracle, time, memory, solver iterations), each in a process of
    its own, and keeps every finished cell in a results folder. `deqbench list` shows what
    can be run; `deqbench show DIR` and `deqbench export DIR` read a run back;
    `deqbench cache info|clear` looks after the oracle's answers and JAX's compiled programs.
    """
    warnings.showwarning = one_line_warning


def one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a skipped cell file, a rebuilt cache entry) as one line on stderr."""
    click.echo(f"deqbench: warning: {message}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
