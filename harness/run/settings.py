"""A run's settings, defined once: the fields of :class:`RunSettings`.

Each field carries its command-line flags, help text and parser in its metadata; the
``deqbench run`` options and the keywords of :func:`deqbench.run` are both derived from
these fields, so a setting is added in one place. Every value a user gives passes through
its field's parser, which raises :class:`BadInput` with one line naming the flag, what was
wrong and what is accepted; nothing is written before all of them pass.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import psutil
import torch

from deqbench.backends import jax_unavailable_reason
from deqbench.harness.options import (
    BadInput,
    Option,
    check_stored_settings,
    choice_parser,
    integer_parser,
    option,
    options_of,
    parse_bytes,
    parse_flag,
    parse_given,
    parse_names,
    positive_parser,
)
from deqbench.harness.references import BadReference, absolute_reference, resolve_class
from deqbench.harness.run.sizes import check_cell_count, check_sizes
from deqbench.problems.base import PROBLEMS
from deqbench.queries import QUERIES
from deqbench.solvers import SOLVERS
from deqbench.strategies.base import STRATEGIES
from deqbench.tolerances import DTYPES, solver_tol, verify_tol

#: --quick: the "quick" size preset, one warm-up run and three timed repeats.
QUICK = {"preset": "quick", "warmup": 1, "repeats": 3}
FULL = {"preset": "default", "warmup": 1, "repeats": 5}
#: torch seeds are 64-bit: torch.Generator.manual_seed refuses anything larger.
MAX_SEED = 2**64 - 1
#: Without --max-memory, a cell may use this share of the memory available at the start.
AUTO_MEMORY_SHARE = 0.9
#: --max-cells: a run planning more cells is refused unless this is raised (a sweep's
#: product grows fast: run.json lists every cell, and 10,000 of them is a day of cells).
MAX_CELLS = 10_000
#: An answer is as exact as its solves: the default --tol is at least this many times the
#: looser of the solver tolerances used. Measured with --f-tol 1e-6 --b-tol 1e-6 (quick tanh
#: and planted; analytic, unrolled, implicit-vjp, iterative-backward; forward, jvp2,
#: pinn_grad): claimed-exact errors up to 15 x the solver tolerance (unrolled pinn_grad on
#: planted), so 100 leaves room for slower-contracting layers and still catches a wrong rule.
SOLVES_TO_ANSWER = 100
#: --tol below this many eps of the dtype cannot be met: the oracle's float64 answer rounded
#: to float32 alone is off by eps, and derivatives lose digits to rounding beyond that.
TOL_FLOOR_EPS = 100
#: --f-tol and --b-tol below this many eps of the dtype: a residual the solve cannot reach.
SOLVER_TOL_FLOOR_EPS = 10
#: --oracle: the oracles each choice grades against, the first giving the main verdict.
ORACLE_CHOICES = {"torch": ("torch",), "jax": ("jax",), "both": ("torch", "jax")}


#: --problem default: one problem of each kind in the zoo, what `make run` runs: a toy layer,
#: an ODE PIDEQ, a PDE with mixed partials, real data.
DEFAULT_PROBLEMS = ("tanh", "vanderpol", "mongeampere2d", "digits")


def references_parser(kind: str) -> Callable[[Any, str], list[str]]:
    """Registry names and ``file.py:Class`` references, each checked; "all": every one deqbench
    ships; for strategies, "peers": every peer (``Strategy.peer``); for problems, "default":
    :data:`DEFAULT_PROBLEMS`."""
    registry = STRATEGIES if kind == "strategy" else PROBLEMS

    def parse(value, flag):
        references = []
        for name in parse_names(value, flag):
            if name == "all":  # a class a user's file registered in this process is not in it
                references.extend(registry.shipped())
                continue
            if name == "peers" and kind == "strategy":  # every peer: other libraries' strategies
                references.extend(n for n in registry.shipped() if registry.get(n).peer is not None)
                continue
            if name == "default" and kind == "problem":
                references.extend(DEFAULT_PROBLEMS)
                continue
            try:
                resolve_class(name, kind)
            except BadReference as error:
                raise BadInput(str(error)) from None
            references.append(absolute_reference(name, kind))
        return list(dict.fromkeys(references))

    return parse


def parse_queries(value, flag) -> list[str]:
    names = parse_names(value, flag)
    if "all" in names:
        return list(QUERIES)
    for name in names:
        if name not in QUERIES:
            raise BadInput(f"unknown query {name!r}; known: {', '.join(QUERIES)}, all")
    return names


def split_size(text: str | None) -> tuple[str | None, dict[str, str]]:
    """``"quick"``, ``"m=256,batch=128"`` or ``"large,batch=8"`` -> (preset, overrides)."""
    if text is None or not str(text).strip():
        return None, {}
    preset, overrides = None, {}
    for item in (part.strip() for part in str(text).split(",")):
        key, equals, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            if preset is not None or not key:
                raise BadInput(
                    f"malformed --size {text!r}: at most one preset name; accepted: a preset "
                    "(quick, default, large), knob=value pairs, or both, comma-separated"
                )
            preset = key
        elif not key or not value or not key.isidentifier():
            raise BadInput(f"malformed --size item {item!r} in {text!r}; accepted: knob=value, e.g. m=256")
        else:
            overrides[key] = value
    return preset, overrides


def parse_size(value, flag) -> str | None:
    split_size(value)  # syntax only; the knobs are checked against the problems later
    return None if value is None or not str(value).strip() else str(value).strip()


def split_sweep(text: str | None) -> dict[str, list[str]]:
    """``"m=64,256;batch=8"`` -> ``{"m": ["64", "256"], "batch": ["8"]}``."""
    if text is None or not str(text).strip():
        return {}
    items = [part.strip() for part in str(text).split(";") if part.strip()]
    if not items:
        raise BadInput(f"malformed --sweep {text!r}: no knob=v1,v2,... item; accepted: e.g. m=64,256,1024")
    axes: dict[str, list[str]] = {}
    for item in items:
        knob, equals, values = item.partition("=")
        knob = knob.strip()
        points = list(dict.fromkeys(v.strip() for v in values.split(",") if v.strip()))
        if not equals or not knob.isidentifier() or not points or knob in axes:
            raise BadInput(
                f"malformed --sweep item {item!r}; accepted: knob=v1,v2,... items separated by ';', "
                "each knob once (e.g. m=64,256,1024)"
            )
        axes[knob] = points
    return axes


def parse_sweep(value, flag) -> str | None:
    if isinstance(value, dict):  # from Python: {"m": [64, 256]}
        value = ";".join(f"{k}={','.join(map(str, v))}" for k, v in value.items())
    split_sweep(value)
    return None if value is None or not str(value).strip() else str(value).strip()


def parse_oracle(value, flag) -> str:
    """torch, jax or both; the JAX oracle needs JAX installed."""
    choice = choice_parser(lambda: list(ORACLE_CHOICES))(value, flag)
    reason = jax_unavailable_reason() if "jax" in ORACLE_CHOICES[choice] else None
    if reason is not None:
        raise BadInput(f"{flag} {choice} needs JAX: {reason}")
    return choice


def parse_device(value, flag) -> str:
    accepted = "cpu, cuda, cuda:N"
    try:
        device = torch.device(str(value))
    except (RuntimeError, ValueError):
        raise BadInput(f"unknown {flag} {value!r}; accepted: {accepted}") from None
    if device.type not in ("cpu", "cuda"):
        raise BadInput(f"unknown {flag} {value!r}; accepted: {accepted}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInput(
                f"{flag} {value}: CUDA is not available here (torch {torch.__version__}); accepted: cpu"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise BadInput(
                f"{flag} {value}: only {count} CUDA device(s); accepted: cuda:0 .. cuda:{count - 1}"
            )
    return str(value)


@dataclass(frozen=True)
class RunSettings:
    """Everything that defines a run's cells and how they are measured (saved in run.json).

    Values are as given (checked and normalised); what depends on others (the size preset
    under --quick, tolerances by dtype) is derived by the properties below.

    Tolerances follow each other: the verdict tolerance defaults to
    ``max(verify_tol(dtype), SOLVES_TO_ANSWER * max(f_tol, b_tol))`` (an answer is only as
    exact as its solves), and :func:`check_tolerances` refuses what cannot be met: a --tol
    below the solver tolerances or below TOL_FLOOR_EPS x the dtype's eps; a --f-tol or
    --b-tol below SOLVER_TOL_FLOOR_EPS x eps is warned of (ToleranceWarning: its solves
    cannot converge, which a run fixing the iteration count may want).
    """

    strategies: list[str] = option(
        "all", "--strategy", "-s", metavar="NAMES", parse=references_parser("strategy"),
        help="Strategy names, comma-separated, 'all', 'peers' (other libraries'), or path/to/file.py:Class. "
        "[default: all]",
    )  # fmt: skip
    problems: list[str] = option(
        "all", "--problem", "-p", metavar="NAMES", parse=references_parser("problem"),
        help="Problem names, comma-separated, 'all', 'default' (one of each kind: "
        f"{', '.join(DEFAULT_PROBLEMS)}), or path/to/file.py:Class (your own Problem). [default: all]",
    )  # fmt: skip
    queries: list[str] = option(
        "all", "--query", "-q", metavar="QUERIES", parse=parse_queries,
        help="Queries, comma-separated, or 'all' (see `deqbench list`). [default: all]",
    )  # fmt: skip
    size: str | None = option(
        None, "--size", metavar="SIZE", parse=parse_size,
        help="A size preset (quick, default, large), knob=value overrides such as m=256,batch=128, "
        "or both ('large,batch=8'). An override applies to the problems that have that knob. "
        "[default: default, or quick with --quick]",
    )  # fmt: skip
    quick: bool = option(
        False, "--quick", parse=parse_flag, is_flag=True,
        help=f"Small and fast: the quick preset, {QUICK['warmup']} warm-up run and {QUICK['repeats']} "
        "timed repeats (what CI runs).",
    )  # fmt: skip
    device: str = option(
        "cpu", "--device", metavar="DEVICE", parse=parse_device, help="cpu, cuda or cuda:N. [default: cpu]"
    )
    dtype: str = option(
        "float64", "--dtype", metavar="DTYPE", parse=choice_parser(lambda: list(DTYPES)),
        help="float64 or float32. [default: float64]",
    )  # fmt: skip
    seed: int = option(
        0, "--seed", metavar="N", parse=integer_parser(0, MAX_SEED),
        help="Seed of the problem instances (0 to 2**64 - 1). [default: 0]",
    )  # fmt: skip
    warmup: int | None = option(
        None, "--warmup", metavar="N", parse=integer_parser(0, optional=True),
        help=f"Untimed runs before measuring. [default: {FULL['warmup']}]",
    )  # fmt: skip
    repeats: int | None = option(
        None, "--repeats", metavar="N", parse=integer_parser(1, optional=True),
        help=f"Timed repeats per cell (median and IQR). [default: {FULL['repeats']}, {QUICK['repeats']} "
        "with --quick]",
    )  # fmt: skip
    f_solver: str | None = option(
        None, "--f-solver", metavar="SOLVER", parse=choice_parser(lambda: list(SOLVERS), optional=True),
        help=f"Forward solver, one of {', '.join(SOLVERS)}. [default: each strategy's own]",
    )  # fmt: skip
    b_solver: str | None = option(
        None, "--b-solver", metavar="SOLVER", parse=choice_parser(lambda: list(SOLVERS), optional=True),
        help=f"Backward (linear) solver, one of {', '.join(SOLVERS)}. [default: each strategy's own]",
    )  # fmt: skip
    f_tol: float | None = option(
        None, "--f-tol", metavar="TOL", parse=positive_parser(),
        help="Forward solver tolerance (relative residual); below "
        f"{SOLVER_TOL_FLOOR_EPS} x the dtype's eps (1.2e-6 in float32) no solve converges (warned). "
        "[default: 1e-10; 1e-5 in float32]",
    )  # fmt: skip
    b_tol: float | None = option(
        None, "--b-tol", metavar="TOL", parse=positive_parser(),
        help="Backward (linear) solver tolerance; below "
        f"{SOLVER_TOL_FLOOR_EPS} x the dtype's eps (1.2e-6 in float32) no solve converges (warned). "
        "[default: 1e-10; 1e-5 in float32]",
    )  # fmt: skip
    f_max_iter: int = option(
        500,
        "--f-max-iter",
        metavar="N",
        parse=integer_parser(1),
        help="Forward solver iteration cap. [default: 500]",
    )
    b_max_iter: int = option(
        500,
        "--b-max-iter",
        metavar="N",
        parse=integer_parser(1),
        help="Backward solver iteration cap. [default: 500]",
    )
    tol: float | None = option(
        None, "--tol", metavar="TOL", parse=positive_parser(),
        help="A cell is 'wrong' when its worst relative error against the oracle exceeds this. It follows "
        f"the solver tolerances: the default is 1e-6 (1e-2 in float32) or {SOLVES_TO_ANSWER} x the looser of "
        "--f-tol and --b-tol, whichever is larger; a --tol below the solver tolerances, or below "
        f"{TOL_FLOOR_EPS} x the dtype's eps (1.2e-5 in float32), cannot be met and is refused. "
        "[default: 1e-6; 1e-2 in float32]",
    )  # fmt: skip
    timeout: float | None = option(
        None, "--timeout", metavar="SECONDS", parse=positive_parser("seconds"),
        help="Seconds a cell's strategy may take (building the problem and measuring) before its "
        "worker is killed ('timeout'). The oracle has its own budget: --oracle-timeout. "
        "[default: none]",
    )  # fmt: skip
    oracle_timeout: float | None = option(
        None, "--oracle-timeout", metavar="SECONDS", parse=positive_parser("seconds"),
        help="Seconds the oracles may take to answer a cell's query, counted apart from --timeout "
        "('timeout', 'oracle: ...'). An answer is computed once per problem instance and query, "
        "then cached, so at large sizes the first cell's oracle can take far longer than any "
        "strategy. [default: the --timeout value]",
    )  # fmt: skip
    threads: int | None = option(
        None, "--threads", metavar="N", parse=integer_parser(1, optional=True),
        help="Threads in each worker: torch's, the BLAS libraries' and, for XLA, its settings; 1 also "
        "keeps the worker to one CPU (XLA's own thread pool ignores its one-thread flag). "
        "[default: each library's own]",
    )  # fmt: skip
    sweep: str | None = option(
        None, "--sweep", metavar="KNOB=V,...", parse=parse_sweep,
        help="Run the matrix at several sizes into one results folder: knob=v1,v2,... for each swept "
        "size knob, several knobs separated by ';' giving their product (m=64,256,1024 or "
        "'m=64,256;batch=8,32'). Each row carries its size. [default: no sweep]",
    )  # fmt: skip
    max_cells: int = option(
        MAX_CELLS, "--max-cells", metavar="N", parse=integer_parser(1),
        help="Refuse a run that plans more cells than this (strategies x problems x sizes x queries; "
        f"a sweep's product grows fast); raise it to run more. [default: {MAX_CELLS}]",
    )  # fmt: skip
    oracle: str = option(
        "torch", "--oracle", metavar="FRAMEWORK", parse=parse_oracle,
        help="Which independent oracle grades the cells: torch, jax (a second implementation sharing no "
        "code with the first), or both (each cell graded against each, and the oracles' own "
        "disagreement reported as an error). [default: torch]",
    )  # fmt: skip
    max_memory: int | None = option(
        None, "--max-memory", metavar="BYTES", parse=parse_bytes,
        help="Stop a cell whose resident memory passes this (e.g. 8G, 512M; 'none': no cap) and record "
        "it as oom. [default: 90% of the memory available at the start]",
    )  # fmt: skip

    # ------------------------------------------------------------ derived
    @property
    def preset(self) -> str:
        preset, _ = split_size(self.size)
        return preset or (QUICK if self.quick else FULL)["preset"]

    @property
    def overrides(self) -> dict[str, str]:
        return split_size(self.size)[1]

    @property
    def sweep_axes(self) -> dict[str, list[str]]:
        return split_sweep(self.sweep)

    @property
    def warmup_runs(self) -> int:
        return (QUICK if self.quick else FULL)["warmup"] if self.warmup is None else self.warmup

    @property
    def timed_repeats(self) -> int:
        return (QUICK if self.quick else FULL)["repeats"] if self.repeats is None else self.repeats

    @property
    def verify_tol(self) -> float:
        """--tol, or what the dtype and the solves can deliver: the dtype's verify tolerance,
        or SOLVES_TO_ANSWER x the looser solver tolerance where that is larger."""
        if self.tol is not None:
            return self.tol
        return max(verify_tol(self.dtype), SOLVES_TO_ANSWER * self.loosest_solver_tol)

    @property
    def loosest_solver_tol(self) -> float:
        solvers = self.solver_settings()
        return max(solvers["f_tol"], solvers["b_tol"])

    def solver_settings(self) -> dict[str, Any]:
        """What each strategy is built with (a solver left out: the strategy's default)."""
        settings = {
            "f_tol": solver_tol(self.dtype) if self.f_tol is None else self.f_tol,
            "b_tol": solver_tol(self.dtype) if self.b_tol is None else self.b_tol,
            "f_max_iter": self.f_max_iter,
            "b_max_iter": self.b_max_iter,
        }
        settings.update({k: v for k, v in (("f_solver", self.f_solver), ("b_solver", self.b_solver)) if v})
        return settings

    @property
    def oracle_budget(self) -> float | None:
        """Seconds the oracles get for one cell's query: --oracle-timeout, else --timeout."""
        return self.timeout if self.oracle_timeout is None else self.oracle_timeout

    @property
    def oracle_frameworks(self) -> tuple[str, ...]:
        return ORACLE_CHOICES[self.oracle]

    def memory_cap(self) -> int | None:
        """The resident-set cap of this run's cells, in bytes (None: no cap)."""
        if self.max_memory is None:
            return int(AUTO_MEMORY_SHARE * psutil.virtual_memory().available)
        return self.max_memory or None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        """Settings read back from run.json, checked again (a strategy file may have moved)."""
        check_stored_settings(data, options())
        return make_settings(**data)


def options() -> dict[str, Option]:
    """Setting name -> its command-line option, in the order ``--help`` shows them."""
    return options_of(RunSettings)


def option_names() -> list[str]:
    return list(options())


def make_settings(**given: Any) -> RunSettings:
    """Checked settings from what a user gave (names as RunSettings' fields); raises BadInput
    on the first problem, naming the flag."""
    settings = parse_given(RunSettings, options(), given)
    check_tolerances(settings)
    check_sizes(settings)
    check_cell_count(settings)
    check_oracle_backends(settings)
    return settings


def check_oracle_backends(settings: RunSettings) -> None:
    """The JAX oracle grades only problems whose equations run under JAX (their ``backends``)."""
    if "jax" not in settings.oracle_frameworks:
        return
    for reference in settings.problems:
        problem_cls = resolve_class(reference, "problem")
        if "jax" not in problem_cls.backends:
            raise BadInput(
                f"--oracle {settings.oracle}: problem {problem_cls.name!r} runs under "
                f"{', '.join(problem_cls.backends)} only (its `backends`); accepted: --oracle torch"
            )


class ToleranceWarning(UserWarning):
    """A solver tolerance the dtype cannot reach: every solve will run to its iteration cap
    and its cell be 'diverged' (what a run that fixes the iteration count asks for)."""


def check_tolerances(settings: RunSettings) -> None:
    """Refuse a --tol the dtype or the solves cannot meet (one line naming the flag); warn
    (ToleranceWarning) of a --f-tol or --b-tol no solve in the dtype reaches."""
    eps = torch.finfo(DTYPES[settings.dtype]).eps
    for flag, value in (("--f-tol", settings.f_tol), ("--b-tol", settings.b_tol)):
        if value is not None and value < SOLVER_TOL_FLOOR_EPS * eps:
            warnings.warn(
                f"{flag} {value:g}: a {settings.dtype} solve cannot reach it (below {SOLVER_TOL_FLOOR_EPS} x "
                f"its eps, {SOLVER_TOL_FLOOR_EPS * eps:.2g}): every solve runs to its iteration cap and its "
                "cell is 'diverged'",
                ToleranceWarning,
                stacklevel=3,
            )
    if settings.tol is None:
        return
    if settings.tol < TOL_FLOOR_EPS * eps:
        raise BadInput(
            f"--tol {settings.tol:g}: {settings.dtype} answers cannot be that exact; accepted: "
            f">= {TOL_FLOOR_EPS * eps:.2g} in {settings.dtype} ({TOL_FLOOR_EPS} x its eps)"
        )
    if settings.tol < settings.loosest_solver_tol:
        raise BadInput(
            f"--tol {settings.tol:g} is below the solver tolerance {settings.loosest_solver_tol:g} "
            "(--f-tol, --b-tol, or the dtype's default): no answer can be that exact; accepted: a "
            "larger --tol, or tighter --f-tol/--b-tol"
        )
