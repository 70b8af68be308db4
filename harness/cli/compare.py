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
            sys.exit(EXIT_FAILED)
