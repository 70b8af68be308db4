"""A disk cache of oracle answers that cannot be stale: keyed by the instance's numbers.

The oracle is the slowest part of a cell, so its answers are kept on disk. An answer is a
function of the numbers the oracle computes on, not of names: a problem that loads a weights
file, imports a helper module or inherits from ``problems/base.py`` gives a different answer
when any of those change, whatever its name, size and seed. So the key is a
:func:`fingerprint` of the float64 CPU copy the oracle works on: its parameters, inputs,
directions and initial state, the values of ``f``, the output head and every loss at seeded
probe points, together with the query, :data:`~deqbench.harness.oracle.torch_oracle.ORACLE_VERSION` and
the torch version. Whatever changes the numbers changes the key.

Every entry carries a keyed checksum (HMAC-SHA256) of its payload, and the fingerprint and
query it answers. The key is a secret of the user's own, made at first use in
``$XDG_CONFIG_HOME/deqbench/oracle-cache.key`` (default ``~/.config``, readable by its owner
only) and never kept in the cache folder: so an entry that passes the check was written by
this user's deqbench, and nobody who can only write the cache folder can make one pass (a
recomputed plain sha256 does not). What holds: **a cached answer was computed by this
user's oracle for exactly this instance and query**; a wrong entry cannot be forged into a
pass. Without a key (its folder not writable) the cache neither reads nor writes.

An entry that is corrupted, truncated, foreign (another format, an entry of an older
deqbench, another user's key) or unreadable is a miss: the answer is recomputed, the entry
rewritten, and one :class:`OracleCacheWarning` names the file and the reason. A bad entry
never raises, and a file that is not a regular file (a FIFO, a device) is never opened for
reading, so it cannot block.

Still, a cached answer is only as right as the oracle that wrote it (an older buggy oracle
has another version in the key). A cached answer may make a cell ok; it may never alone make
a claimed-exact cell wrong: before it would, the runner asks again with ``refresh=True``,
which recomputes the answer and replaces the entry.

The cache lives in ``$DEQBENCH_CACHE_DIR`` (default ``$XDG_CACHE_HOME/deqbench/oracle``, or
``~/.cache/deqbench/oracle``), one folder per problem name (for people reading it; the name
is no part of the key). Entries are written atomically (a temporary file, then
``os.replace``), so concurrent runs at worst compute the same answer twice; a read-only cache
still answers, it just does not remember. ``deqbench cache info|clear`` looks after it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from deqbench.backends import jax_versions
from deqbench.harness.oracle.torch_oracle import ORACLE_VERSION, OracleAnswer, oracle, single_threaded
from deqbench.harness.results.files import write_atomically
from deqbench.problems.base import PHYSICS_QUERIES, Problem
from deqbench.queries import check_query_name

CACHE_ENV = "DEQBENCH_CACHE_DIR"
#: The secret that keys the entries' checksums, per user, outside the cache folder.
KEY_FILE_NAME = "oracle-cache.key"
KEY_BYTES = 32

#: The first bytes of every entry file; the trailing digit is the entry format's version
#: (2: an HMAC-SHA256 under the user's key; 1 was a plain sha256 anyone could recompute).
MAGIC = b"DEQBORACLE2\n"
#: After the magic: the payload's HMAC as 64 hex digits and a newline, then the payload.
CHECKSUM_LENGTH = 64
HEADER_LENGTH = len(MAGIC) + CHECKSUM_LENGTH + 1

#: Probe points for the fingerprint come from a generator of their own with this seed, so
#: fingerprinting neither reads nor moves the global RNG and is the same in every process.
PROBE_SEED = 20240917
#: Probe states are this scale times standard normal samples: inside tanh's curved range.
PROBE_SCALE = 0.5
#: Seeded random states f is probed at, besides ``z_init()``.
RANDOM_PROBES = 3

#: ``<query>-<fingerprint>.pt``: the name of an entry file inside its problem folder.
ENTRY_NAME = re.compile(r"(?P<query>[A-Za-z0-9_]+)-(?P<fingerprint>[0-9a-f]{64})\.pt")
#: ``<query>-<24 hex>.pt``: entries of the older name-keyed cache; never read, but counted
#: (as unreadable) and removed by ``clear``, since they are this cache's own files.
LEGACY_ENTRY_NAME = re.compile(r"[A-Za-z0-9_]+-[0-9a-f]{24}\.pt")
#: ``.<entry name>.<random>.tmp``: a write in progress, or one a killed process left behind.
TEMPORARY_NAME = re.compile(r"\.[A-Za-z0-9_]+-[0-9a-f]{24,64}\.pt\..+\.tmp")


class OracleCacheWarning(UserWarning):
    """An oracle cache entry could not be used (corrupted, foreign, unreadable); it was recomputed."""


class UnreadableEntry(Exception):
    """An entry file that exists but cannot be trusted; the message says why."""


class CacheDirectoryError(ValueError):
    """The cache directory is not a folder (one line for the user)."""


def check_cache_dir(directory: Path) -> None:
    """CacheDirectoryError when ``directory`` (or a parent) exists and is not a folder; a
    missing one is fine (it is made at the first answer)."""
    for path in (directory, *directory.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                raise CacheDirectoryError(
                    f"oracle cache directory {directory}: {path} is not a folder; accepted: a folder "
                    f"(set ${CACHE_ENV} or --dir to one)"
                )
            return


def key_file() -> Path:
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "deqbench" / KEY_FILE_NAME


def cache_key() -> bytes | None:
    """The user's secret for the entries' checksums, made at first use (0600, written to a
    temporary file and linked into place, so two processes agree on one); None when it can
    neither be read nor made."""
    path = key_file()
    key = read_key(path)
    if key is not None:
        return key
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_bytes(KEY_BYTES))
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    return read_key(path)


def read_key(path: Path) -> bytes | None:
    """The key in ``path``: a regular file of KEY_BYTES bytes, else None."""
    with contextlib.suppress(OSError):
        data = read_regular_file(path)
        if len(data) == KEY_BYTES:
            return data
    return None


def read_regular_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path`` (its first ``limit``), opened without blocking: a FIFO or device
    in its place raises UnreadableEntry instead of waiting for a writer."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnreadableEntry("not a regular file")
        return handle.read() if limit is None else handle.read(limit)


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "deqbench" / "oracle"


# ------------------------------------------------------------------ fingerprint
class NumberHasher:
    """sha256 over labelled fields; every field is framed so that no two sequences collide."""

    def __init__(self):
        self._sha = hashlib.sha256()

    def text(self, label: str, value: Any) -> None:
        self._sha.update(f"{label}={value!r}\n".encode())

    def tensor(self, label: str, value: torch.Tensor) -> None:
        value = value.detach().cpu()
        if value.layout != torch.strided:  # a sparse tensor: its numbers, not its storage
            value = value.to_dense()
        value = value.resolve_conj().resolve_neg().contiguous()
        self.text(label, (str(value.dtype), tuple(value.shape)))
        self._sha.update(value.reshape(-1).view(torch.uint8).numpy())

    def value(self, label: str, value: Any) -> None:
        """A tensor by its bytes, a dict of them by sorted name, a tuple or list item by item,
        anything else by its repr (never a tensor by its repr: that rounds)."""
        if isinstance(value, torch.Tensor):
            self.tensor(label, value)
        elif isinstance(value, dict):
            for name in sorted(value, key=str):
                self.value(f"{label}[{name}]", value[name])
        elif isinstance(value, tuple | list):
            self.text(label, f"{type(value).__name__} of {len(value)}")
            for index, item in enumerate(value):
                self.value(f"{label}[{index}]", item)
        else:
            self.text(label, value)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def probe_value(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` without a graph, or ``"raised <Error>"``: a layer or loss that fails
    on a probe still has a fingerprint (the oracle reports the error itself)."""
    try:
        with torch.no_grad():
            return function(*args)
    except Exception as error:  # noqa: BLE001 - any failure is part of the instance's behaviour
        return f"raised {type(error).__name__}"


def probe_draws(like: torch.Tensor, count: int, generator: torch.Generator) -> list[torch.Tensor]:
    """``count`` seeded states shaped like ``like``, float64 on the CPU."""
    return [
        PROBE_SCALE * torch.randn(like.shape, generator=generator, dtype=torch.float64) for _ in range(count)
    ]


def nudged(theta: dict[str, Any], generator: torch.Generator) -> dict[str, Any]:
    """theta with every floating tensor moved a little: f away from the point's own theta, so
    that an edit to how f uses a parameter shows even where it happens to agree at theta."""
    return {
        name: value + 0.1 * torch.randn(value.shape, generator=generator, dtype=value.dtype)
        if isinstance(value, torch.Tensor) and value.is_floating_point()
        else value
        for name, value in sorted(theta.items())
    }


def hash_instance(hasher: NumberHasher, problem: Problem, query: str) -> None:
    """The stored numbers: parameters, inputs, directions (the one the query uses too)."""
    hasher.value("theta", problem.theta)
    hasher.value("x", problem.x)
    hasher.value("directions", problem.directions)
    hasher.value("direction", probe_value(problem.direction, query))


def hash_layer_probes(
    hasher: NumberHasher, problem: Problem, z_init: torch.Tensor, generator: torch.Generator
) -> list[torch.Tensor]:
    """f at z_init and at seeded states, once at moved inputs and parameters; the output head.

    Returns the random states, for the loss probes.
    """
    theta, x = problem.theta, problem.x
    states = probe_draws(z_init, RANDOM_PROBES, generator)
    for index, z in enumerate([z_init, *states]):
        hasher.value(f"f{index}", probe_value(problem.f, theta, x, z))
    moved_x = x + 0.1 * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    moved_theta = nudged(theta, generator)
    hasher.value("f_moved", probe_value(problem.f, moved_theta, moved_x, states[0]))
    hasher.value("output", probe_value(problem.output, theta, states[0]))
    return states


def hash_loss_probes(
    hasher: NumberHasher, problem: Problem, states: list[torch.Tensor], generator: torch.Generator
) -> None:
    """Each loss the problem has, at two probe states (with probe partials of z, by name),
    and the partials each physics loss names (a renamed or re-indexed partial changes the key)."""
    theta, x = problem.theta, problem.x
    for index, z in enumerate(states[:2]):
        hasher.value(f"data_loss{index}", probe_value(problem.data_loss, theta, x, z))
        for query in PHYSICS_QUERIES:
            loss, partials = problem.physics_query(query)
            if loss is None:
                continue
            draws = probe_draws(z, len(partials), generator)
            d = dict(zip(partials, draws, strict=True))
            hasher.value(f"{query}_partials", repr(sorted(partials.items())))
            hasher.value(f"{query}_loss{index}", probe_value(loss, theta, x, z, d))


def oracle_for(framework: str) -> tuple[Callable[[Problem, str], OracleAnswer], str]:
    """The oracle function of a framework and the version of its method (part of the key).

    The JAX oracle's module imports JAX only when it computes, so naming it costs nothing.
    """
    if framework == "torch":
        return oracle, ORACLE_VERSION
    if framework == "jax":
        from deqbench.harness.oracle import jax_oracle as oracle_jax

        return oracle_jax.oracle, f"jax-{oracle_jax.ORACLE_VERSION}"
    raise ValueError(f"unknown oracle framework {framework!r}; known: torch, jax")


def fingerprint(problem: Problem, query: str, framework: str = "torch") -> str:
    """sha256 (hex) of everything that determines the oracle's answer to ``query``.

    Computed on ``problem.to("cpu", torch.float64)``, exactly what the oracle computes on,
    single-threaded like the oracle (so that the probes' rounding is the same in every
    process). A few milliseconds on the quick problems.
    """
    hasher = NumberHasher()
    hasher.text("query", query)
    hasher.text("oracle_version", oracle_for(framework)[1])
    hasher.text("torch", torch.__version__)
    if framework != "torch":
        hasher.text("framework", json.dumps(jax_versions(), sort_keys=True))
    hasher.text("dtype", str(problem.dtype))
    hasher.text("m", probe_value(lambda: problem.m))
    hasher.text("unsupported", probe_value(problem.unsupported_reason, query))
    copy = problem.to("cpu", torch.float64)
    generator = torch.Generator().manual_seed(PROBE_SEED)
    with single_threaded():
        hash_instance(hasher, copy, query)
        z_init = probe_value(copy.z_init)
        hasher.value("z_init", z_init)
        if isinstance(z_init, torch.Tensor):  # else the oracle fails at z_init() itself
            states = hash_layer_probes(hasher, copy, z_init, generator)
            hash_loss_probes(hasher, copy, states, generator)
    return hasher.hexdigest()


# ------------------------------------------------------------------ entry files
def keyed_checksum(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def encode_entry(payload: dict[str, Any], key: bytes) -> bytes:
    """Magic, the payload's keyed checksum, the payload (a torch file)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    return MAGIC + keyed_checksum(key, body) + b"\n" + body


def check_header(header: bytes) -> None:
    """UnreadableEntry unless ``header`` (an entry's first HEADER_LENGTH bytes) is sound."""
    if not header.startswith(MAGIC):
        raise UnreadableEntry(f"not an oracle cache entry: no {MAGIC.strip().decode()} header")
    checksum = header[len(MAGIC) : HEADER_LENGTH - 1]
    if len(header) < HEADER_LENGTH or header[-1:] != b"\n" or not re.fullmatch(rb"[0-9a-f]{64}", checksum):
        raise UnreadableEntry("truncated header")


def decode_entry(data: bytes, key: bytes) -> dict[str, Any]:
    """The payload of an entry file's bytes; UnreadableEntry if it is not a sound entry."""
    check_header(data[:HEADER_LENGTH])
    checksum, body = data[len(MAGIC) : HEADER_LENGTH - 1], data[HEADER_LENGTH:]
    if not hmac.compare_digest(keyed_checksum(key, body), checksum):
        raise UnreadableEntry("checksum mismatch (damaged, or not written under this user's key)")
    try:
        payload = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - whatever torch raises, the entry is unusable
        raise UnreadableEntry(f"payload does not load: {type(error).__name__}") from error
    check_payload_shape(payload)
    return payload


def check_payload_shape(payload: Any) -> None:
    """What ``answer_from_payload`` needs, with the types it needs."""
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("fingerprint"), str)
        and isinstance(payload.get("query"), str)
        and isinstance(payload.get("method"), str)
        and is_dict_of(payload.get("values"), torch.Tensor)
        and is_dict_of(payload.get("error_estimate"), (float, int))
    ):
        raise UnreadableEntry("malformed payload")


def is_dict_of(value: Any, kind: type | tuple[type, ...]) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, kind) for k, v in value.items()
    )


def read_entry(path: Path, key: str, query: str, secret: bytes) -> dict[str, Any] | None:
    """The payload stored at ``path`` for (key, query), checked under ``secret``; None when
    there is no file.

    Raises UnreadableEntry, and nothing else, for a file that is there but unusable.
    """
    try:
        data = read_regular_file(path)
    except (FileNotFoundError, NotADirectoryError):  # no entry yet (or no cache folder)
        return None
    except UnreadableEntry:
        raise
    except Exception as error:  # noqa: BLE001 - a permission error, a folder in its place
        raise UnreadableEntry(f"{type(error).__name__}: {error}") from error
    payload = decode_entry(data, secret)
    if payload["fingerprint"] != key:
        raise UnreadableEntry("written for another problem instance")
    if payload["query"] != query:
        raise UnreadableEntry(f"written for query {payload['query']!r}")
    return payload


def entry_payload(key: str, query: str, problem_name: str, answer: OracleAnswer) -> dict[str, Any]:
    return {
        "fingerprint": key,
        "query": query,
        "problem": problem_name,  # for people reading the entry; no part of the key
        "oracle_version": ORACLE_VERSION,
        # clones: a view would save the whole storage it looks into
        "values": {name: value.detach().cpu().clone() for name, value in answer.values.items()},
        "error_estimate": {name: float(e) for name, e in answer.error_estimate.items()},
        "method": str(answer.method),
    }


def answer_from_payload(payload: dict[str, Any]) -> OracleAnswer:
    return OracleAnswer(
        query=payload["query"],
        values=payload["values"],
        error_estimate={name: float(e) for name, e in payload["error_estimate"].items()},
        method=payload["method"],
        cached=True,
    )


def folder_name(problem_name: str) -> str:
    """A problem's name as a safe folder name (a user's problem may be named anything)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", problem_name).lstrip(".") or "problem"


def has_sound_header(path: Path) -> bool:
    """Whether a file named like an entry is a regular file of this format with a sound
    header (its first bytes only: the payload and its checksum are checked when it is used)."""
    if ENTRY_NAME.fullmatch(path.name) is None:  # a legacy entry: never read again
        return False
    try:
        check_header(read_regular_file(path, HEADER_LENGTH))
    except (OSError, UnreadableEntry):
        return False
    return True


def is_entry_name(name: str) -> bool:
    return bool(ENTRY_NAME.fullmatch(name) or LEGACY_ENTRY_NAME.fullmatch(name))


def file_size(path: Path) -> int:
    """Its size in bytes; 0 for a file another process removed meanwhile."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ---------------------------------------------------------------------- cache
class OracleCache:
    """``answer(problem, query)``: the oracle's answer, from disk when it was computed before.

    ``hits`` counts answers read from disk, ``misses`` answers computed because no sound
    entry was there, ``refreshes`` answers recomputed because the caller asked.
    """

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self._secret: bytes | None = None
        self.hits = 0
        self.misses = 0
        self.refreshes = 0

    def entry_path(
        self, problem: Problem, query: str, key: str | None = None, framework: str = "torch"
    ) -> Path:
        """Where the answer to ``query`` on ``problem`` is kept (``key``: its fingerprint)."""
        key = fingerprint(problem, query, framework) if key is None else key
        return self.directory / folder_name(str(problem.name)) / f"{query}-{key}.pt"

    def answer(
        self, problem: Problem, query: str, *, refresh: bool = False, framework: str = "torch"
    ) -> OracleAnswer:
        """The oracle's answer: from a sound entry (``cached=True``), else computed and stored.

        ``refresh=True`` always recomputes and replaces the entry: what the runner does before
        a cached answer would make a claimed-exact cell wrong. Errors of the oracle itself
        (an unsupported query, no attracting fixed point) propagate; a bad entry never does.
        ``framework``: whose oracle, torch's or the independent JAX one (own entries).
        """
        check_query_name(query)  # before the name becomes part of a path
        compute, _ = oracle_for(framework)
        key = fingerprint(problem, query, framework)
        path = self.entry_path(problem, query, key)
        secret = self.secret()
        if refresh:
            self.refreshes += 1
        else:
            payload = None if secret is None else self._lookup(path, key, query, secret)
            if payload is not None:
                self.hits += 1
                return answer_from_payload(payload)
            self.misses += 1
        answer = compute(problem, query)
        self._store(path, entry_payload(key, query, str(problem.name), answer), secret)
        return answer

    def secret(self) -> bytes | None:
        """The user's key for the checksums (None: no key, so no cache)."""
        if self._secret is None:
            self._secret = cache_key()
        return self._secret

    def store(self, problem: Problem, query: str, answer: OracleAnswer, framework: str = "torch") -> Path:
        """Keep ``answer`` as the entry for (problem, query), replacing any; returns its path."""
        check_query_name(query)
        key = fingerprint(problem, query, framework)
        path = self.entry_path(problem, query, key)
        self._store(path, entry_payload(key, query, str(problem.name), answer), self.secret())
        return path

    @staticmethod
    def _lookup(path: Path, key: str, query: str, secret: bytes) -> dict[str, Any] | None:
        """The sound payload at ``path``, or None (with one warning when a file was there)."""
        try:
            return read_entry(path, key, query, secret)
        except UnreadableEntry as reason:
            warnings.warn(
                f"oracle cache entry {path} unreadable ({reason}); recomputed",
                OracleCacheWarning,
                stacklevel=3,
            )
            return None

    @staticmethod
    def _store(path: Path, payload: dict[str, Any], secret: bytes | None) -> None:
        # a read-only cache (or one without a key) still answers, it just does not remember
        if secret is not None:
            with contextlib.suppress(OSError):
                write_atomically(path, encode_entry(payload, secret))

    # ------------------------------------------------------------ housekeeping
    def _problem_folders(self) -> Iterator[Path]:
        try:
            children = sorted(self.directory.iterdir())
        except OSError:  # no cache yet
            return
        yield from (child for child in children if child.is_dir() and not child.is_symlink())

    @staticmethod
    def _files_named(folder: Path, is_ours: Callable[[str], bool]) -> list[Path]:
        """The files directly in a problem folder whose names say they are the cache's."""
        try:
            children = sorted(folder.iterdir())
        except OSError:  # a folder we may not read holds nothing we can count or remove
            return []
        return [path for path in children if is_ours(path.name) and path.is_file()]

    def _entry_files(self, folder: Path) -> list[Path]:
        """Entries, current and legacy."""
        return self._files_named(folder, is_entry_name)

    def _temporary_files(self, folder: Path) -> list[Path]:
        """Writes in progress, or left behind by a killed process."""
        return self._files_named(folder, lambda name: bool(TEMPORARY_NAME.fullmatch(name)))

    def info(self) -> dict[str, Any]:
        """The cache at a glance, from each entry's name, size and header (never its payload,
        so a large cache is counted in moments).

        Keys: ``directory``, ``entries``, ``bytes``, ``problems`` (entries per problem
        folder) and ``unreadable`` (entries whose header already shows they would be
        recomputed when next asked for: another format, a damaged header, not a file).
        """
        check_cache_dir(self.directory)
        entries, size, unreadable, problems = 0, 0, 0, {}
        for folder in self._problem_folders():
            files = self._entry_files(folder)
            if not files:
                continue
            problems[folder.name] = len(files)
            entries += len(files)
            size += sum(file_size(path) for path in files)
            unreadable += sum(not has_sound_header(path) for path in files)
        return {
            "directory": str(self.directory),
            "entries": entries,
            "bytes": size,
            "problems": problems,
            "unreadable": unreadable,
        }

    def clear(self) -> int:
        """Remove every entry (and leftover temporary file); returns how many entries went.

        Other files are left alone, and so is a problem folder that still holds any. A write
        in progress whose temporary file goes just does not remember its answer.
        """
        removed = 0
        for folder in self._problem_folders():
            entries, temporaries = self._entry_files(folder), self._temporary_files(folder)
            for path in entries + temporaries:
                path.unlink(missing_ok=True)
            removed += len(entries)
            if entries or temporaries:
                remove_if_empty(folder)
        return removed


def remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not empty: another file, or a new entry meanwhile
        folder.rmdir()
