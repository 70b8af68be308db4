"""``deqbench cache info|clear``: look after the oracle's disk cache (:mod:`.oracle_cache`).

The group is registered on the ``deqbench`` command in ``cli.py``; on its own it is a plain
click group, which is how the tests drive it.
"""

from __future__ import annotations

from pathlib import Path

import click

from deqbench.harness.cli.common import fail
from deqbench.harness.oracle.cache import CACHE_ENV, CacheDirectoryError, OracleCache, check_cache_dir
from deqbench.harness.report.units import format_bytes

WHERE = (
    f"The cache lives in ${CACHE_ENV} if set, else in $XDG_CACHE_HOME/deqbench/oracle, else in "
    "~/.cache/deqbench/oracle; --dir overrides all three."
)
KEYED = (
    "Entries are keyed by a fingerprint of the numbers the oracle computes on (parameters, "
    "inputs, the layer and losses at probe points, torch and oracle versions), so an edited "
    "problem, a changed data file or a new torch never reuses an old answer. Each entry's checksum "
    "is keyed (HMAC-SHA256) by a secret of your own, made at first use in "
    "$XDG_CONFIG_HOME/deqbench/oracle-cache.key (~/.config), so an entry anyone else wrote, even "
    "with a recomputed checksum, is recomputed, never trusted: a cached answer was computed by your oracle."
)

directory_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="PATH",
    help=f"Cache directory to use instead of ${CACHE_ENV} or the default.",
)


@click.group("cache", help=f"The oracle's disk cache of answers.\n\n{WHERE}\n\n{KEYED}")
def cache() -> None:
    pass


@cache.command(
    "info",
    help=(
        "Show where the cache is, how many entries it holds and how much space they take, "
        "per problem, and how many are unreadable (from each entry's header only, so it is quick "
        "on a large cache; a damaged payload is found, and recomputed, when the entry is next "
        "used).\n\n" + WHERE + "\n\n" + KEYED
    ),
)
@directory_option
def info(directory: Path | None) -> None:
    try:
        summary = OracleCache(directory).info()
    except CacheDirectoryError as error:
        fail(str(error))
    click.echo(f"directory:  {summary['directory']}")
    click.echo(f"entries:    {summary['entries']}")
    click.echo(f"size:       {format_bytes(summary['bytes'])}")
    click.echo(f"unreadable: {summary['unreadable']}")
    if summary["problems"]:
        click.echo("per problem:")
    for problem, count in sorted(summary["problems"].items()):
        click.echo(f"  {problem}: {count}")


@cache.command(
    "clear",
    help=(
        "Remove every oracle answer from the cache (they are recomputed when next needed). "
        "Only the cache's own entry files go; any other file in the directory stays.\n\n"
        + WHERE
        + "\n\n"
        + KEYED
    ),
)
@directory_option
def clear(directory: Path | None) -> None:
    oracle_cache = OracleCache(directory)
    try:
        check_cache_dir(oracle_cache.directory)
    except CacheDirectoryError as error:
        fail(str(error))
    try:
        removed = oracle_cache.clear()
    except OSError as error:
        raise click.ClickException(f"cannot clear {oracle_cache.directory}: {error}") from error
    noun = "entry" if removed == 1 else "entries"
    click.echo(f"removed {removed} oracle cache {noun} from {oracle_cache.directory}")
