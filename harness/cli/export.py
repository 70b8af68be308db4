"""``deqbench export DIR``: every finished cell's rows in one CSV or parquet file."""

from __future__ import annotations

from pathlib import Path

import click

from deqbench.harness.cli.common import fail, open_run


@click.command("export")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV (the default when no format is given).")
@click.option("--parquet", "as_parquet", is_flag=True, help="Write one parquet file.")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    default=None,
    help="File to write. [default: DIR/results.csv or DIR/results.parquet]",
)
def export_command(directory: Path, as_csv: bool, as_parquet: bool, output: Path | None) -> None:
    """All rows of a run in one file: every finished cell, one row per (cell, metric)."""
    folder = open_run(directory)
    if as_csv and as_parquet and output is not None:
        fail("--output names one file; give --csv or --parquet, not both")
    rows = folder.read()
    formats = [f for f, wanted in (("csv", as_csv), ("parquet", as_parquet)) if wanted] or ["csv"]
    for fmt in formats:
        path = output or folder.path / f"results.{fmt}"
        try:
            rows.to_csv(path, index=False) if fmt == "csv" else rows.to_parquet(path, index=False)
        except OSError as error:
            fail(f"cannot write {path}: {error.strerror or error}")
        click.echo(f"{len(rows)} rows -> {path}")
