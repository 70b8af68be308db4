"""Strategy and problem classes by reference: a registry name or ``path/to/file.py:Class``.

A user's file is imported under a name derived from its path and registered like a shipped
class. It is imported again whenever its contents change, so a file edited between two
``deqbench.run`` calls in one process is run (and verified) as it is now, never as it was.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path

from deqbench.problems.base import PROBLEMS, Problem
from deqbench.registry import DuplicateNameError, UnknownNameError
from deqbench.strategies.base import STRATEGIES, Strategy


class BadReference(ValueError):
    """A strategy or problem reference that names nothing usable (one-line message)."""


def is_file_reference(ref: str) -> bool:
    """``path/to/file.py:ClassName`` (as opposed to a registry name)."""
    path, sep, name = ref.rpartition(":")
    return bool(sep) and path.endswith(".py") and bool(name)


def is_bare_file(ref: str) -> bool:
    """``path/to/file.py`` without ``:Class``."""
    return ref.endswith(".py") and not is_file_reference(ref)


def runnable_class(cls: type, base: type) -> bool:
    """A subclass of ``base`` that sets its own ``name`` (what a run can use)."""
    return issubclass(cls, base) and "name" in cls.__dict__


def completed_reference(ref: str, kind: str) -> str:
    """``file.py`` as ``file.py:Class`` when the file defines exactly one class of ``kind``
    (with a ``name``); else BadReference suggesting the form and naming the classes there."""
    base = Strategy if kind == "strategy" else Problem
    module = load_file(Path(ref), kind)
    defined = [
        v
        for v in vars(module).values()
        if isinstance(v, type) and v.__module__ == module.__name__ and runnable_class(v, base)
    ]
    if len(defined) == 1:
        return f"{ref}:{defined[0].__name__}"
    found = ", ".join(sorted(c.__name__ for c in defined)) or f"no {base.__name__} class with a name"
    raise BadReference(f"{ref}: name the class as path/to/file.py:Class (there: {found})")


def absolute_reference(ref: str, kind: str | None = None) -> str:
    """A file reference with its path made absolute (a resumed run may start elsewhere); a
    bare ``file.py`` completed with its one class of ``kind`` when a kind is given."""
    if kind is not None and is_bare_file(ref):
        ref = completed_reference(ref, kind)
    if not is_file_reference(ref):
        return ref
    path, _, class_name = ref.rpartition(":")
    return f"{Path(path).resolve()}:{class_name}"


def resolve_class(ref: str, kind: str) -> type:
    """The Strategy or Problem class a reference names (``kind``: "strategy" or "problem")."""
    base, registry = (Strategy, STRATEGIES) if kind == "strategy" else (Problem, PROBLEMS)
    if is_bare_file(ref):
        ref = completed_reference(ref, kind)
    if not is_file_reference(ref):
        try:
            return registry.get(ref)
        except UnknownNameError as error:
            raise BadReference(str(error)) from None
    path, _, class_name = ref.rpartition(":")
    module = load_file(Path(path), kind)
    cls = getattr(module, class_name, None)
    if cls is None:
        defined = sorted(
            n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__
        )
        known = ", ".join(defined) or "none"
        raise BadReference(f"{path} has no class {class_name!r}; classes there: {known}")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise BadReference(f"{ref} is not a deqbench {base.__name__} subclass")
    if "name" not in cls.__dict__:
        raise BadReference(f"{ref} sets no `name`; a {kind} class needs name = '...' to be run")
    try:
        registry.add(cls)
    except DuplicateNameError as error:
        raise BadReference(str(error)) from None
    return cls


#: module name -> digest of the file contents it was imported from
_loaded_digests: dict[str, str] = {}


def load_file(path: Path, kind: str):
    """A user's file, imported once per contents under a name derived from its path."""
    if not path.is_file():
        raise BadReference(f"{kind} file {str(path)!r} not found (expected path/to/file.py:ClassName)")
    resolved = path.resolve()
    module_name = f"deqbench_user_{resolved.stem}_{hashlib.sha1(str(resolved).encode()).hexdigest()[:12]}"
    contents = hashlib.sha256(resolved.read_bytes()).hexdigest()
    previous = _loaded_digests.get(module_name)
    if module_name in sys.modules and previous == contents:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    module = importlib.util.module_from_spec(spec)
    old_module = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as error:
        if old_module is None:
            del sys.modules[module_name]
        else:
            sys.modules[module_name] = old_module
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        message = str(error).splitlines()[0] if str(error) else ""
        raise BadReference(f"could not import {path}: {type(error).__name__}: {message}") from None
    _loaded_digests[module_name] = contents
    return module


def referenced_files(references: Iterable[str]) -> list[Path]:
    """The files that file references name (registry names name none), each once."""
    paths = [Path(ref.rpartition(":")[0]) for ref in references if is_file_reference(ref)]
    return list(dict.fromkeys(paths))


def file_digest(path: Path) -> str | None:
    """sha256 (hex) of a file's contents; None when it cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
