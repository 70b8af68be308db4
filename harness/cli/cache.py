"""``deqbench cache info|clear``: look after the oracle's disk cache (:mod:`.oracle_cache`)
and JAX's compiled programs (:mod:`~deqbench.harness.worker.jax_cache`).

The group is registered on the ``deqbench`` command in ``cli.py``; on its own it is a plain
click group, which is how the tests drive it.
"""

from __future__ import annotations

from pathlib import Path

import click

from deqbench.harness.cli.common import fail
from deqbench.harness.oracle.cache import CACHE_ENV, CacheDirectoryError, OracleCache, check_cache_dir
from deqbench.harness.report.units import format_bytes
from deqbench.harness.worker import jax_cache

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

JAX_WHERE = (
    f"JAX's compiled programs live in ${jax_cache.JAX_CACHE_ENV} if set ('off' turns that cache "
    "off), else in $XDG_CACHE_HOME/deqbench/jax, else in ~/.cache/deqbench/jax, one folder per "
    "jax and jaxlib version, so an upgrade never loads a program an older XLA compiled; "
    "--jax-dir overrides them. With --dir alone, only the oracle's cache is looked at."
)


def folder_option(flag: str, name: str, what: str, variable: str):
    """A --dir-like option: a cache folder to use instead of ``variable``'s or the default."""
    return click.option(
        flag,
        name,
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        metavar="PATH",
        help=f"{what} directory to use instead of ${variable} or the default.",
    )


directory_option = folder_option("--dir", "directory", "Cache", CACHE_ENV)
jax_directory_option = folder_option("--jax-dir", "jax_directory", "JAX cache", jax_cache.JAX_CACHE_ENV)


def jax_base(directory: Path | None, jax_directory: Path | None) -> Path | None:
    """The JAX cache folder a command looks at: --jax-dir, else none when --dir names another
    oracle cache (a test's, say), else the configured one (None when turned off)."""
    if jax_directory is not None:
        return jax_directory
    return None if directory is not None else jax_cache.base_dir()


@click.group(
    "cache",
    help="The oracle's disk cache of answers, and JAX's compiled programs."
    f"\n\n{WHERE}\n\n{KEYED}\n\n{JAX_WHERE}",
)
def cache() -> None:
    pass


@cache.command(
    "info",
    help=(
        "Show where the cache is, how many entries it holds and how much space they take, "
        "per problem, and how many are unreadable (from each entry's header only, so it is quick "
        "on a large cache; a damaged payload is found, and recomputed, when the entry is next "
        "used); then JAX's compiled programs per jax version.\n\n"
        + WHERE
        + "\n\n"
        + KEYED
        + "\n\n"
        + JAX_WHERE
    ),
)
@directory_option
@jax_directory_option
def info(directory: Path | None, jax_directory: Path | None) -> None:
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
    if directory is None or jax_directory is not None:  # --dir alone: that oracle cache only
        echo_jax_info(jax_base(directory, jax_directory))


def echo_jax_info(base: Path | None) -> None:
    """JAX's compiled programs: where, and per jax version how many and how large."""
    if base is None:
        click.echo(f"jax programs: off (${jax_cache.JAX_CACHE_ENV}={jax_cache.OFF})")
        return
    summary = jax_cache.info(base)
    click.echo(f"jax programs: {summary['directory']}")
    for version, folder in summary["versions"].items():
        current = " (this installation)" if version == summary["current"] else ""
        click.echo(f"  {version}: {folder['programs']} files, {format_bytes(folder['bytes'])}{current}")


@cache.command(
    "clear",
    help=(
        "Remove every oracle answer from the cache (they are recomputed when next needed). "
        "Only the cache's own entry files go; any other file in the directory stays. JAX's "
        "compiled programs go too (compiled again when next needed).\n\n"
        + WHERE
        + "\n\n"
        + KEYED
        + "\n\n"
        + JAX_WHERE
    ),
)
@directory_option
@jax_directory_option
def clear(directory: Path | None, jax_directory: Path | None) -> None:
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
    base = jax_base(directory, jax_directory)
    if base is not None:
        try:
            files = jax_cache.clear(base)
        except OSError as error:
            raise click.ClickException(f"cannot clear {base}: {error}") from error
        click.echo(f"removed {files} compiled JAX program files from {base}")
