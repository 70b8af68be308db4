"""A disk cache of oracle answers: the oracle runs once per problem instance and query.

Answers are keyed by what determines them: the problem's instance key (name, size knobs,
seed, dtype), the query, and fingerprints of the oracle's source and of the problem's source
file, so an edited oracle or problem is never answered from a stale entry. The cache lives
in ``$DEQBENCH_CACHE_DIR`` (default ``~/.cache/deqbench/oracle``); entries are torch files
written atomically, so concurrent runs at worst compute the same answer twice.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import torch

from deqbench.problems.base import Problem

CACHE_ENV = "DEQBENCH_CACHE_DIR"


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "deqbench" / "oracle"


@cache
def file_fingerprint(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return "unknown"


def source_fingerprint(obj: Any) -> str:
    """A hash of the file that defines a class or module (edits invalidate cached answers)."""
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        path = None
    return file_fingerprint(path) if path else "unknown"


def cache_key(problem: Problem, query: str) -> dict[str, Any]:
    from deqbench.harness import oracle as oracle_module

    return {
        **problem.instance_key(),
        "query": query,
        "problem_source": source_fingerprint(type(problem)),
        "oracle_source": source_fingerprint(oracle_module),
    }


class OracleCache:
    """``answer(problem, query)``: the oracle's answer, from disk when it was computed before."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def path(self, key: dict[str, Any]) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        return self.directory / str(key["problem"]) / f"{key['query']}-{digest[:24]}.pt"

    def answer(self, problem: Problem, query: str):
        from deqbench.harness.oracle import OracleAnswer, oracle

        key = cache_key(problem, query)
        path = self.path(key)
        stored = self._load(path, key)
        if stored is not None:
            self.hits += 1
            return OracleAnswer(
                query=query,
                values=stored["values"],
                error_estimate=stored["error_estimate"],
                method=stored["method"],
            )
        self.misses += 1
        answer = oracle(problem, query)
        self._store(path, key, answer)
        return answer

    @staticmethod
    def _load(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
        """The stored entry, or None if absent, unreadable or (hash collision) for another key."""
        try:
            stored = torch.load(path, weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError):
            return None
        return stored if stored.get("key") == json.loads(json.dumps(key, default=str)) else None

    def _store(self, path: Path, key: dict[str, Any], answer) -> None:
        entry = {
            "key": json.loads(json.dumps(key, default=str)),
            "values": {name: value.detach().cpu() for name, value in answer.values.items()},
            "error_estimate": {name: float(e) for name, e in answer.error_estimate.items()},
            "method": str(answer.method),
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save(entry, temporary)
            os.replace(temporary, path)
        except OSError:  # a read-only cache still answers, it just does not remember
            pass
