"""``deqbench compare A B``: two runs side by side, B / A, with regressions flagged."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from deqbench.harness.cli.common import (
    EXIT_FAILED,
    check_out,
    fail,
    load,
    make_out,
    parse_factor,
    parse_formats,
    stdout_console,
)


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
@click.option("--markdown", "as_markdown", is_flag=True, help="Print Markdown instead of tables.")
def compare_command(
    runs: tuple[Path, ...],
    threshold: str,
    fail_on: str | None,
    out: Path | None,
    formats: str,
    as_markdown: bool,
) -> None:
    """Two runs side by side: B / A for time, memory and error of the cells they share.

    A and B are run folders or .csv/.parquet exports. The settings that differ between
    them come first; then the cells, matched on their id and size, those that changed
    beyond --threshold AND beyond the noise (or changed status) first. Time is beyond the
    noise when a Mann-Whitney U test on the two cells' timed repeats gives p < 0.01 (it
    needs 5 repeats a side; files without repeats: the median ± IQR/2 bands apart); memory
    when the difference is at least what the meter resolves (64 KiB for the resident set).
    Tables on a terminal, Markdown with --markdown. With --out, DIR gets compare.md,
    compare.csv and compare.png/svg (B against A). Exit code: 1 with --fail-on-regression
    FACTOR when a shared cell got slower or hungrier by more than FACTOR beyond the noise,
    or went from ok to wrong, diverged, error, timeout, oom or killed; 0 otherwise; 2 on
    bad input.

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

    result = compare.comparison(a_rows, b_rows, str(runs[0]), str(runs[1]), limit)
    shared = result.shared
    if shared.empty:
        fail(f"{runs[0]} and {runs[1]} share no cell (matched on cell id and size)")
    if as_markdown:
        click.echo(compare.markdown(result))
    else:
        compare.print_rich(result, stdout_console())
    if out is not None:
        make_out(out)
        (out / "compare.md").write_text(compare.markdown(result), encoding="utf-8")
        columns = [c for c in shared.columns if c not in ("beyond", "time_test")]
        shared[columns].assign(time_p=[t.p for t in shared["time_test"]]).to_csv(
            out / "compare.csv", index=False
        )
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
            click.echo(
                f"deqbench: {len(bad)} regression(s) beyond ×{factor:g} and the noise: {listed}", err=True
            )
            sys.exit(EXIT_FAILED)
