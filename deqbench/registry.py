"""Registries built from the classes themselves.

A strategy or problem class registers itself when its module is imported (through
``__init_subclass__``); :func:`discover` imports every module of a package so that adding a
strategy or a problem is one new file and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class DuplicateNameError(ValueError):
    """Two classes claimed the same registry name."""


class UnknownNameError(KeyError):
    """A name that no registered class carries."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0])


def _same_definition(old: type, new: type) -> bool:
    """A class defined again by re-importing its module (a user's file edited between two
    runs in one process): the new definition replaces the old, it is no duplicate."""
    return (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__)


class Registry(Generic[T]):
    """Name -> class, filled by the classes as they are defined."""

    def __init__(self, kind: str, package: str):
        self.kind = kind
        self.package = package
        self._classes: dict[str, type[T]] = {}
        self._discovered = False

    def add(self, cls: type[T]) -> None:
        name = cls.name
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} class {cls.__qualname__} must set a non-empty `name`")
        existing = self._classes.get(name)
        if existing is not None and existing is not cls and not _same_definition(existing, cls):
            raise DuplicateNameError(
                f"duplicate {self.kind} name {name!r}: {existing.__module__}.{existing.__qualname__}"
                f" and {cls.__module__}.{cls.__qualname__}"
            )
        self._classes[name] = cls

    def discover(self) -> None:
        """Import every module of the package once, which registers its classes."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._classes)

    def shipped(self) -> list[str]:
        """The names of the classes deqbench ships (defined in the package), not those a
        user's file registered in this process: what "all" means."""
        return [
            name for name in self.names() if self._classes[name].__module__.startswith(f"{self.package}.")
        ]

    def get(self, name: str) -> type[T]:
        self.discover()
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}"
            ) from None

    def __iter__(self) -> Iterator[type[T]]:
        return (self._classes[name] for name in self.names())

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._classes
