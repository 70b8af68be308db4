"""What the ``deqbench`` commands share: one-line bad input, exit codes, options from a
settings class, the console, and SIGTERM as Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path

import click
from rich.console import Console

from deqbench.harness.options import BadInput, number_parser
from deqbench.harness.results.run_folder import RUN_FILE, RunFolder, UnreadableRun
from deqbench.harness.run.settings import options

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
#: What deqbench report and compare can draw figures as.
FORMATS = ("png", "svg")


def stdout_console() -> Console:
    """Wide when writing to a file or CI log (rich assumes 80 columns there)."""
    return Console() if sys.stdout.isatty() else Console(width=200)


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit code 2."""
    click.echo(f"deqbench: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


#: --out of the commands that write a results folder (run, train).
out_option = click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Results folder, new or empty. [default: results/<timestamp>-<id>]",
)


def settings_options(command, defined=options):
    """The options of :class:`~deqbench.harness.run.settings.RunSettings` (or of another
    settings class: ``defined`` returns them by name), as click options.

    Values reach the settings' own parsers as typed (strings), so the CLI and
    ``deqbench.run`` check them alike and give the same one-line messages.
    """
    for name, opt in reversed(list(defined().items())):
        if opt.is_flag:
            command = click.option(*opt.flags, name, is_flag=True, default=False, help=opt.help)(command)
        else:
            command = click.option(*opt.flags, name, default=None, metavar=opt.metavar, help=opt.help)(
                command
            )
    return command


def interrupt_on_termination() -> None:
    """SIGTERM and SIGHUP end a run as Ctrl-C does: the cell in flight is killed, every
    finished cell is kept, and the message says how to resume."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def check_resume_alone(ctx: click.Context, defined: dict) -> None:
    """--resume takes its settings from run.json: any setting (or --out) given is bad input."""
    from click.core import ParameterSource

    from deqbench.harness.options import BadInput

    extra = [o for o in [*defined, "out"] if ctx.get_parameter_source(o) != ParameterSource.DEFAULT]
    if extra:
        flags = ", ".join(defined[o].flag if o in defined else "--out" for o in extra)
        raise BadInput(f"--resume takes its settings from DIR/run.json; drop {flags}")


def start_or_resume(ctx: click.Context, resume, defined: dict, resume_run, new_run):
    """(settings, folder, record, console) of the run a command is to execute: resumed from
    the folder ``resume`` names (``resume_run(resume)``; no setting may be given beside it)
    or new (``new_run()``). Bad input is one line and exit 2; the folder is announced, and
    for a resumed run how many cells it already has."""
    from deqbench.harness.options import BadInput

    try:
        if resume is not None:
            check_resume_alone(ctx, defined)
            settings, folder, record = resume_run(resume)
        else:
            settings, folder, record = new_run()
    except BadInput as error:
        fail(str(error))
    console = stdout_console()
    console.print(f"results: {folder.path}", highlight=False)
    if resume is not None:
        print_resuming(console, folder, record)
    return settings, folder, record, console


def resume_option(what: str):
    """--resume of the commands that run into a folder (run, train); ``what`` says what a
    resume keeps and runs."""
    return click.option(
        "--resume",
        type=click.Path(path_type=Path),
        default=None,
        help=f"{what} Takes no other option.",
    )


@contextlib.contextmanager
def executing(folder: RunFolder, command: str, kept: str = "finished cells"):
    """Around a run's execution: Ctrl-C says where ``kept`` are and how to resume (exit 130);
    bad input met on the way, or a folder that cannot be written, is one line (exit 2)."""
    from deqbench.harness.results.life_cycle import RunAborted

    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            f"interrupted: {kept} are in {folder.path}; deqbench {command} --resume {folder.path}", err=True
        )
        sys.exit(EXIT_INTERRUPTED)
    except (BadInput, RunAborted) as error:
        fail(str(error))


#: --trust of the commands that resume (run, train).
trust_option = click.option(
    "--trust",
    is_flag=True,
    default=False,
    help="With --resume: import the strategy and problem files run.json names even where one lies "
    "outside the run folder or changed since the run started (on a terminal you are asked instead).",
)


def trusting(resume_run, trust: bool):
    """``resume_run(path, trust, notify)`` for :func:`start_or_resume`: the files it imports
    named on stderr; where they need trust and --trust was not given, a terminal is asked."""
    from deqbench.harness.results.life_cycle import UntrustedFiles

    def resume(path):
        try:
            return resume_run(path, trust, lambda line: click.echo(line, err=True))
        except UntrustedFiles as error:
            if not sys.stdin.isatty() or not click.confirm(f"{error}. Import them now?", err=True):
                raise
            return resume_run(path, True, lambda line: None)

    return resume


def print_resuming(console, folder, record) -> None:
    done, total = len(folder.finished()), len(record["cells"])
    console.print(f"resuming: {done} of {total} cells already finished", highlight=False)


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


# ------------------------------------------------- report and compare
def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        fail(
            f"--format {text!r}: unknown format {', '.join(unknown) or '(none)'}; accepted: png, svg, png,svg"
        )
    return list(dict.fromkeys(formats))


def parse_factor(text: str | None, flag: str) -> float | None:
    """A ratio threshold: a finite number above 1 (one line on stderr and exit 2 otherwise)."""
    try:
        return number_parser(1.0, unit="a ratio such as 1.25")(text, flag)
    except BadInput as error:
        fail(str(error))


def check_out(out: Path | None) -> None:
    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out {out}: a file; accepted: a folder (new, or one to write the report into)")


def make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"--out {out}: cannot create it ({error.strerror or error})")


def load(paths) -> object:
    """The rows of run folders or exported files (one line and exit 2 when unreadable)."""
    from deqbench.harness.report import data as rd  # pandas: only for the commands that read rows

    try:
        return rd.load_many(list(paths))
    except rd.ReportInputError as error:
        fail(str(error))


# ------------------------------------------------------------------ report
