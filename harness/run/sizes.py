"""Size checks of a run: every problem takes the preset and the knobs given, every knob is someone's."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from deqbench.harness.options import BadInput
from deqbench.harness.references import resolve_class

if TYPE_CHECKING:
    from deqbench.harness.run.settings import RunSettings


def problem_overrides(problem_cls: type, preset: str, overrides: dict[str, str]) -> dict[str, str]:
    """The overrides that name one of this problem's knobs (others belong to other problems)."""
    knobs = problem_cls.presets.get(preset, {})
    return {key: value for key, value in overrides.items() if key in knobs}


def check_knob_values(size: dict[str, Any]) -> None:
    """Sizes are counts >= 1 and finite numbers: m=0, m=-5 or rho=nan builds nothing sensible."""
    for knob, value in size.items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise BadInput(f"--size {knob}={value}: accepted: an integer >= 1")
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"--size {knob}={value}: accepted: a finite number")


def check_sizes(settings: RunSettings) -> None:
    """Every problem has the preset and takes its knobs' values; every knob is someone's."""
    known: set[str] = set()
    for reference in settings.problems:
        problem_cls = resolve_class(reference, "problem")
        own = problem_overrides(problem_cls, settings.preset, settings.overrides)
        try:
            size = problem_cls.resolve_size(settings.preset, own)
        except (ValueError, TypeError) as error:
            raise BadInput(f"--size: {error}") from None
        check_knob_values(size)
        known.update(problem_cls.presets[settings.preset])
    unknown = sorted(set(settings.overrides) - known)
    if unknown:
        raise BadInput(
            f"--size: no selected problem has a knob {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    check_sweep(settings, known)


def check_sweep(settings: RunSettings, known: set[str]) -> None:
    """Every swept knob is some problem's and not also given by --size, and every swept
    value builds a valid size."""
    axes = settings.sweep_axes
    unknown = sorted(set(axes) - known)
    if unknown:
        raise BadInput(
            f"--sweep: no selected problem has a knob {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    both = sorted(set(axes) & set(settings.overrides))
    if both:
        raise BadInput(
            f"--sweep and --size both set {', '.join(map(repr, both))}; accepted: each knob in one of them"
        )
    for reference in settings.problems:
        problem_cls = resolve_class(reference, "problem")
        for knob, values in axes.items():
            if knob not in problem_cls.presets[settings.preset]:
                continue
            for value in values:
                own = problem_overrides(problem_cls, settings.preset, {**settings.overrides, knob: value})
                try:
                    size = problem_cls.resolve_size(settings.preset, own)
                except (ValueError, TypeError) as error:
                    raise BadInput(f"--sweep {knob}={value}: {error}") from None
                try:
                    check_knob_values({knob: size[knob]})
                except BadInput as error:
                    raise BadInput(str(error).replace("--size", "--sweep")) from None


def planned_cell_count(settings: RunSettings) -> int:
    """How many cells the run plans at most, counted without planning them: strategies x
    queries x each problem's share of the sweep (the product of its swept knobs' values)."""
    sizes = 0
    for reference in settings.problems:
        knobs = resolve_class(reference, "problem").presets.get(settings.preset, {})
        sizes += math.prod(len(values) for knob, values in settings.sweep_axes.items() if knob in knobs)
    return len(settings.strategies) * len(settings.queries) * sizes


def check_cell_count(settings: RunSettings) -> None:
    count = planned_cell_count(settings)
    if count > settings.max_cells:
        raise BadInput(
            f"the run plans {count:,} cells, more than --max-cells {settings.max_cells:,}; "
            "accepted: fewer strategies, problems, queries or swept values, or a larger --max-cells"
        )
