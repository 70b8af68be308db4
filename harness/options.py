"""Command-line options defined once, as dataclass fields, and checked into one-line errors.

A settings dataclass (``RunSettings``, ``TrainSettings``) declares each field with
:func:`option`: its flags, help text and parser. The commands' click options and the Python
keywords are derived from those fields, and every value a user gives passes through its
field's parser, which raises :class:`BadInput` with one line naming the flag, what was wrong
and what is accepted. The parsers here are generic; those that know the registries are in
:mod:`deqbench.harness.run.settings`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any


class BadInput(ValueError):
    """Input the run cannot start with; the message is one line for the user."""


def parse_names(value: str | Sequence[str], flag: str) -> list[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]``, without blanks or repeats."""
    items = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    names = list(dict.fromkeys(item.strip() for item in items if item.strip()))
    if not names:
        raise BadInput(f"{flag} is empty; give a name, a comma-separated list, or all")
    return names


def parse_flag(value, flag) -> bool:
    if isinstance(value, bool):
        return value
    raise BadInput(f"{flag} {value!r}: accepted: True or False")


def choice_parser(choices: Callable[[], Sequence[str]], optional: bool = False):
    def parse(value, flag):
        if value is None and optional:
            return None
        if value not in choices():
            raise BadInput(f"unknown {flag} {value!r}; accepted: {', '.join(choices())}")
        return value

    return parse


def integer_parser(low: int, high: int | None = None, optional: bool = False):
    """An integer in [low, high]; strings of digits are accepted (the CLI passes strings)."""
    accepted = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"

    def parse(value, flag):
        if value is None and optional:
            return None
        number = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            number = int(value)
        if number is None or number < low or (high is not None and number > high):
            raise BadInput(f"{flag} {value}: accepted: {accepted}")
        return number

    return parse


def number_parser(
    low: float = 0.0, *, inclusive: bool = False, unit: str = "a number", optional: bool = True
):
    """A finite number above ``low`` (or equal to it, ``inclusive``); 1e400 reads as inf, and
    inf would switch a check off, so it is refused too."""
    bound = f">= {low:g}" if inclusive else f"> {low:g}"

    def parse(value, flag):
        if value is None and optional:
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        in_range = number >= low if inclusive else number > low
        if isinstance(value, bool) or not (math.isfinite(number) and in_range):
            raise BadInput(f"{flag} {value}: accepted: {unit}, finite and {bound}")
        return number

    return parse


def positive_parser(unit: str = "a number", optional: bool = True):
    """A finite number > 0."""
    return number_parser(0.0, unit=unit, optional=optional)


BYTE_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(value, flag="--max-memory") -> int | None:
    """``"4G"``, ``"512M"``, ``"1.5G"`` or a byte count -> bytes; ``"none"`` or 0 -> 0 (no cap)."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    text = str(value).strip().upper().removesuffix("IB").removesuffix("B")
    if text in ("NONE", "0"):
        return 0
    unit = text[-1] if text and text[-1] in BYTE_UNITS else ""
    try:
        amount = float(text[: len(text) - len(unit)])
    except ValueError:
        amount = math.nan
    if not (math.isfinite(amount) and amount > 0) or amount * BYTE_UNITS[unit] >= 2**63:
        raise BadInput(f"malformed {flag} {value!r}; accepted: bytes with K, M, G or T (e.g. 8G), or none")
    return max(1, int(amount * BYTE_UNITS[unit]))


@dataclass(frozen=True)
class Option:
    """How a setting appears on the command line, and how its value is checked."""

    flags: tuple[str, ...]
    help: str
    parse: Callable[[Any, str], Any]
    is_flag: bool = False
    metavar: str = "VALUE"

    @property
    def flag(self) -> str:
        return self.flags[0]


def option(default, *flags: str, help: str, parse, is_flag: bool = False, metavar: str = "VALUE"):
    return field(default=default, metadata={"option": Option(flags, help, parse, is_flag, metavar)})


def options_of(settings_class: type) -> dict[str, Option]:
    """A settings dataclass's command-line options by field name, in field order (the order
    ``--help`` shows them); fields without one are left out."""
    return {f.name: f.metadata["option"] for f in fields(settings_class) if "option" in f.metadata}


def check_stored_settings(data: dict[str, Any], known: dict[str, Option]) -> None:
    """BadInput naming the settings a run.json holds that are not (or no longer) options."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise BadInput(f"unknown settings {', '.join(unknown)}")


def parse_given(settings_class: type, known: dict[str, Option], given: dict[str, Any]):
    """``settings_class`` from what a user gave: an unknown name is refused, a None value left
    to the field's default, and every value parsed by its option (BadInput naming the flag).
    Every parser of a setting whose default is None takes None as "derive it"."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise BadInput(f"unknown setting {', '.join(map(repr, unknown))}; accepted: {', '.join(known)}")
    defaults = {f.name: f.default for f in fields(settings_class) if f.name in known}
    values = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    return settings_class(**{name: opt.parse(values[name], opt.flag) for name, opt in known.items()})
