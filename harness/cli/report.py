"""``deqbench report`` and ``deqbench compare``: click commands, registered by :mod:`.cli`.

Bad input (a path that is neither a run folder nor a .csv/.parquet export, an empty run,
an unknown --baseline or --format, a factor that is not a number above 1, an --out that is
a file) is one line on stderr starting ``deqbench: error:``, exit code 2, and nothing
written. matplotlib and seaborn are imported only once a figure is drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deqbench.harness.report import data as rd

EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
FORMATS = ("png", "svg")


def fail(message: str) -> None:
    click.echo(f"deqbench: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def parse_formats(text: str) -> list[str]:
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        fail(
            f"--format {text!r}: unknown format {', '.join(unknown) or '(none)'}; accepted: png, svg, png,svg"
        )
    return list(dict.fromkeys(formats))


def parse_factor(text: str | None, flag: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 1 or value == float("inf"):
        fail(f"{flag} {text}: accepted: a finite number above 1, e.g. 1.25")
    return value


def check_out(out: Path | None) -> None:
    if out is not None and out.exists() and not out.is_dir():
        fail(f"--out {out}: a file; accepted: a folder (new, or one to write the report into)")


def make_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"--out {out}: cannot create it ({error.strerror or error})")


def load(paths) -> object:
    try:
        return rd.load_many(list(paths))
    except rd.ReportInputError as error:
        fail(str(error))


# ------------------------------------------------------------------ report
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


# ----------------------------------------------------------------- compare
@click.command("compare")
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    default="1.25",
    show_default=True,
    metavar="FACTOR",
    help="Ratios beyond this factor (either way) are changes, listed first.",
)
@click.option(
    "--fail-on-regression",
    "fail_on",
    default=None,
    metavar="FACTOR",
    help="Exit 1 when a shared cell got slower or hungrier by more than FACTOR, or went from ok to wrong.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for compare.md/csv and figures.",
)
@click.option(
    "--format", "formats", default="png,svg", show_default=True, metavar="png,svg", help="Figure files."
)
def compare_command(
    runs: tuple[Path, ...], threshold: str, fail_on: str | None, out: Path | None, formats: str
) -> None:
    """Two runs side by side: B / A for time, memory and error of the cells they share.

    A and B are run folders or .csv/.parquet exports. Cells are matched on their id and
    size; those that changed beyond --threshold (or changed status) come first. With
    --out, DIR gets compare.md, compare.csv and compare.png/svg (B against A). Exit code:
    1 with --fail-on-regression FACTOR when a shared cell got slower, or hungrier (peak
    memory, autograd-saved bytes; changes under 64 KiB are not counted), by more than
    FACTOR, or went from ok to wrong, diverged, error, timeout, oom or killed; 0 otherwise;
    2 on bad input.

    \b
    Example:
      deqbench compare results/before results/after --fail-on-regression 1.5 --out cmp
    """
    if len(runs) != 2:
        fail(f"compare takes two runs, A and B; got {len(runs)}")
    limit = parse_factor(threshold, "--threshold")
    factor = parse_factor(fail_on, "--fail-on-regression")
    check_out(out)
    chosen = parse_formats(formats)
    a_rows, b_rows = load(runs[:1]), load(runs[1:])
    from deqbench.harness.report import compare

    shared = compare.compare_cells(a_rows, b_rows, limit)
    if shared.empty:
        fail(f"{runs[0]} and {runs[1]} share no cell (matched on cell id and size)")
    text = compare.markdown(shared, str(runs[0]), str(runs[1]), limit)
    click.echo(text)
    if out is not None:
        make_out(out)
        (out / "compare.md").write_text(text, encoding="utf-8")
        columns = [c for c in shared.columns if c not in ("beyond",)]
        shared[columns].to_csv(out / "compare.csv", index=False)
        compare.compare_figures(shared, out, chosen, limit)
        click.echo(
            f"wrote {out / 'compare.md'}, {out / 'compare.csv'}, "
            + ", ".join(f"{out}/compare.{f}" for f in chosen)
        )
    if factor is not None:
        bad = compare.regressions(shared, factor)
        if len(bad):
            listed = "; ".join(
                f"{r['base_cell']} ({r['size']}): {r['changes'] or 'changed'}" for _, r in bad.iterrows()
            )
            click.echo(f"deqbench: {len(bad)} regression(s) beyond ×{factor:g}: {listed}", err=True)
            sys.exit(EXIT_REGRESSION)
