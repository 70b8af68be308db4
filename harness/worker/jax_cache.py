"""JAX's persistent compilation cache: compiled XLA programs kept on disk between runs.

A JAX cell compiles its query in a fresh worker process; with this cache a second run (or a
second cell asking for the same program) loads the program instead of compiling it again,
which makes ``compile_time`` the time to look the program up and load it. The cache lives
beside the oracle's, in one folder per jax and jaxlib version
(``jax-0.10.2-jaxlib-0.10.2``): JAX's own key covers the program, the compile options and
the backend, and the folder keeps an upgrade from ever reading a program an older XLA
wrote. ``deqbench cache info|clear`` shows and clears it.

JAX writes no program that calls back into Python: the query programs of deqbench's JAX
strategies and peers send their solver statistics to the host with ``jax.debug.callback``,
so today they are compiled in every cell (measured: 11 peer cells compiled as long on the
third run as on the first); what the cache keeps are the programs without callbacks (the
JAX oracle's, array conversions).

Where: ``$DEQBENCH_JAX_CACHE_DIR`` if set (``off`` turns the cache off, for measuring cold
compilation), else ``$XDG_CACHE_HOME/deqbench/jax``, else ``~/.cache/deqbench/jax``.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import sys
from pathlib import Path

JAX_CACHE_ENV = "DEQBENCH_JAX_CACHE_DIR"
#: The value of $DEQBENCH_JAX_CACHE_DIR that turns the cache off.
OFF = "off"
#: A version folder's name: what deqbench writes, and all that clear() removes.
VERSION_FOLDER = re.compile(r"^jax-[^/]+-jaxlib-[^/]+$")


def base_dir() -> Path | None:
    """The folder that holds the version folders; None when the cache is turned off."""
    given = os.environ.get(JAX_CACHE_ENV)
    if given is not None:
        return None if given.strip().lower() in (OFF, "") else Path(given).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "deqbench" / "jax"


def version_key() -> str | None:
    """``jax-<version>-jaxlib-<version>`` of the installed JAX (read without importing it);
    None where JAX is not installed."""
    try:
        jax_version = importlib.metadata.version("jax")
        jaxlib_version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    return f"jax-{jax_version}-jaxlib-{jaxlib_version}"


def cache_dir(base: Path | None = None) -> Path | None:
    """This installation's cache folder (None: turned off, or no JAX)."""
    base = base_dir() if base is None else base
    key = version_key()
    return None if base is None or key is None else base / key


def enable(jax) -> Path | None:
    """Point ``jax`` (the imported module) at this installation's cache folder, caching
    every program however quickly it compiled; the folder, or None when turned off."""
    directory = cache_dir()
    if directory is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return directory


def process_state() -> dict:
    """This process's JAX: whether it is imported, whether an XLA backend has started (after
    which XLA's settings no longer apply), and the cache folder it compiles into. What a
    worker server's fresh child sees: imported, not started, the cache on."""
    from deqbench.harness.worker.measure import jax_backend_started

    jax = sys.modules.get("jax")
    return {
        "imported": jax is not None,
        "backend_started": jax_backend_started(),
        "cache_dir": jax.config.jax_compilation_cache_dir if jax is not None else None,
    }


def version_folders(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and VERSION_FOLDER.match(p.name))


def info(base: Path | None = None) -> dict:
    """Where the cache is, whether it is on, and per version folder its programs and bytes."""
    chosen = base_dir() if base is None else base
    folders = {}
    for folder in version_folders(chosen) if chosen is not None else []:
        files = [f for f in folder.rglob("*") if f.is_file()]
        folders[folder.name] = {"programs": len(files), "bytes": sum(f.stat().st_size for f in files)}
    return {"directory": chosen, "current": version_key(), "versions": folders}


def clear(base: Path | None = None) -> int:
    """Remove every version folder (the programs are compiled again when next needed);
    how many programs went. Other files in the folder stay."""
    chosen = base_dir() if base is None else base
    removed = 0
    for folder in version_folders(chosen) if chosen is not None else []:
        removed += sum(1 for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder)
    return removed
