"""``deqbench report`` and ``deqbench compare``: click commands, registered by :mod:`.cli`.

Bad input (a path that is neither a run folder nor a .csv/.parquet export, an empty run,
an unknown --baseline or --format, a factor that is not a number above 1, an --out that is
a file) is one line on stderr starting ``deqbench: error:``, exit code 2, and nothing
written. matplotlib and seaborn are imported only once a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path

import click

from deqbench.harness.cli.common import check_out, fail, load, make_out, parse_formats
from deqbench.harness.report import data as rd


@click.command("report")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), default=None, help="Folder to write the report to."
)
@click.option(
    "--baseline",
    default="unrolled",
    show_default=True,
    metavar="STRATEGY",
    help="Strategy the ratio figures divide by.",
)
@click.option(
    "--format", "formats", default="png,svg", show_default=True, metavar="png,svg", help="Figure files."
)
def report_command(results: tuple[Path, ...], out: Path | None, baseline: str, formats: str) -> None:
    """Figures, a Markdown summary and a self-contained HTML page from one or more runs.

    RESULTS are run folders (deqbench run --out DIR) or files from deqbench export (.csv,
    .parquet); several are read together (a sweep's sizes in one folder, or runs at
    different sizes or settings in several). DIR gets report.md, report.html (figures
    embedded, opens offline) and each figure as PNG and SVG: accuracy heatmaps, time and
    memory against size, memory against forced iteration counts, time against error with
    the Pareto frontier, and time and memory relative to --baseline. A figure the data
    cannot support (one size only, say) is left out, and the report says why.

    Training runs (deqbench train --out DIR) get their own report: the loss against step
    and wall time, the test error against wall time, each strategy's parameter drift from
    an exact strategy's, and the final table (time and memory per step, final error, time
    to the target error); --baseline does not apply there.

    \b
    Examples:
      deqbench report results/20261202-101500-1a2b3c --out report
      deqbench report run-m64 run-m256 run-m1024 --out report --baseline analytic
    """
    if not results:
        fail("no RESULTS given; accepted: run folders or .csv/.parquet files from deqbench export")
    if out is None:
        fail("--out DIR is required: the folder to write the report to")
    check_out(out)
    chosen = parse_formats(formats)
    rows = load(results)
    if training_rows(rows):
        return training_report(rows, out, chosen)
    present = rd.strategies_present(rows)
    if baseline not in present:
        fail(f"--baseline {baseline!r} is not in the results; the strategies there: {', '.join(present)}")
    make_out(out)
    from deqbench.harness.report.documents import write_report

    figures, documents = write_report(rows, out, chosen, baseline)
    echo_written(figures, documents)


def training_rows(rows) -> bool:
    """Whether the inputs are training runs (deqbench train); a mix is bad input."""
    training = rows["query"] == "train"
    if training.any() and not training.all():
        fail(
            "the inputs mix training runs (deqbench train) and matrix runs (deqbench run); report them apart"
        )
    return bool(training.all())


def training_report(rows, out: Path, formats: list[str]) -> None:
    """The training report: loss and test-error curves, parameter drift, the final table."""
    make_out(out)
    from deqbench.harness.train.report import write_training_report

    echo_written(*write_training_report(rows, out, formats))


def echo_written(figures, documents) -> None:
    made = [f for f in figures if hasattr(f, "paths")]
    skipped = [f for f in figures if not hasattr(f, "paths")]
    for figure in made:
        click.echo(f"figure {figure.name}: " + ", ".join(str(p) for p in figure.paths.values()))
    for figure in skipped:
        click.echo(f"left out {figure.name}: {figure.reason}")
    for document in documents:
        click.echo(f"wrote {document}")
