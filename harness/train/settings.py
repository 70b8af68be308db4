"""The settings of `deqbench train`, defined once (flags, help, parser), as `run`'s are.

A training run is a set of *cells*, one per (strategy, problem, seed), plus the MLP baseline
per (problem, seed). The options of ``deqbench run`` that make sense for training are the
same fields of :class:`~deqbench.harness.run.settings.RunSettings`, reused with their help and
checks (``--size``, ``--quick``, ``--device``, ``--dtype``, ``--seed``, ``--threads``, the
solver options); the training's own are defined here. Every value passes its parser, which
raises :class:`~deqbench.harness.options.BadInput` with one line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deqbench.harness.options import (
    BadInput,
    Option,
    check_stored_settings,
    integer_parser,
    number_parser,
    option,
    options_of,
    parse_flag,
    parse_given,
    parse_names,
    positive_parser,
)
from deqbench.harness.references import resolve_class
from deqbench.harness.run.settings import options, references_parser, split_size
from deqbench.harness.run.sizes import check_sizes

#: The PIDEQ comparison: the exact strategies and the standard (wrong above first order) one.
DEFAULT_STRATEGIES = "analytic,iterative-backward,unrolled,implicit-vjp"
#: --quick: the quick size preset, a few steps, one seed, a small test grid.
QUICK = {"preset": "quick", "steps": 5, "seeds": 1, "test_points": 16, "eval_every": 1, "checkpoint_every": 2}
FULL = {
    "preset": "default",
    "steps": 300,
    "seeds": 3,
    "test_points": 200,
    "eval_every": 10,
    "checkpoint_every": 25,
}


def run_option(name: str, default: Any = None):
    """A field that is ``deqbench run``'s option of that name: same flags, help and checks."""
    return field(default=default, metadata={"option": options()[name]})


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a training run (saved in run.json, what --resume reads)."""

    strategies: list[str] = option(
        DEFAULT_STRATEGIES, "--strategy", "-s", metavar="NAMES", parse=parse_names,
        help="Strategies to train with, comma-separated, 'all' (every one that computes the physics "
        f"loss's gradient on the problem), or path/to/file.py:Class. [default: {DEFAULT_STRATEGIES}]",
    )  # fmt: skip
    problems: list[str] = option(
        "vanderpol", "--problem", "-p", metavar="NAMES", parse=references_parser("problem"),
        help="Problems with a physics loss (vanderpol, fourtanks, inr, ...), comma-separated, or "
        "path/to/file.py:Class. [default: vanderpol]",
    )  # fmt: skip
    steps: int | None = option(
        None, "--steps", metavar="N", parse=integer_parser(1, optional=True),
        help=f"Adam steps per cell. [default: {FULL['steps']}; {QUICK['steps']} with --quick]",
    )  # fmt: skip
    seeds: int | None = option(
        None, "--seeds", metavar="N", parse=integer_parser(1, optional=True),
        help="Seeds per strategy: --seed, --seed + 1, ... Each seed draws the initial parameters (the "
        "same for every strategy) and, where the problem samples them, the collocation points. "
        f"[default: {FULL['seeds']}; {QUICK['seeds']} with --quick]",
    )  # fmt: skip
    lr: float = option(
        1e-3, "--lr", metavar="RATE", parse=positive_parser(),
        help="Adam's learning rate (PyTorch's other Adam defaults). [default: 1e-3]",
    )  # fmt: skip
    data_weight: float = option(
        0.0, "--data-weight", metavar="W", parse=number_parser(0.0, inclusive=True),
        help="Weight of the data loss (the ODE reference at the collocation points) in the training "
        "loss, added to the physics loss (residual and initial-condition terms). 0, the PIDEQ "
        "setting, trains on the initial condition and the physics alone. [default: 0]",
    )  # fmt: skip
    collocation: int | None = option(
        None, "--collocation", metavar="N", parse=integer_parser(2, optional=True),
        help="Collocation points (the problem's batch knob; vanderpol: N times evenly spaced on [0, 2], "
        "t = 0 first, where the initial-condition term applies). [default: the size preset's batch: "
        "32, 8 with --quick]",
    )  # fmt: skip
    test_points: int | None = option(
        None, "--test-points", metavar="N", parse=integer_parser(2, optional=True),
        help="Points of the test grid the error against the ODE reference is measured on (a second "
        f"instance with batch N). [default: {FULL['test_points']}; {QUICK['test_points']} with --quick]",
    )  # fmt: skip
    eval_every: int | None = option(
        None, "--eval-every", metavar="N", parse=integer_parser(1, optional=True),
        help="Measure the test error every N steps (and after the last), outside the timed step. "
        f"[default: {FULL['eval_every']}; {QUICK['eval_every']} with --quick]",
    )  # fmt: skip
    checkpoint_every: int | None = option(
        None, "--checkpoint-every", metavar="N", parse=integer_parser(1, optional=True),
        help="Save parameters, Adam's state and the rows so far every N steps: --resume continues "
        f"from there. [default: {FULL['checkpoint_every']}; {QUICK['checkpoint_every']} with --quick]",
    )  # fmt: skip
    target_error: float = option(
        0.05, "--target-error", metavar="E", parse=positive_parser(),
        help="The test error (RMS distance from the ODE reference) whose first reaching the final table "
        "times. [default: 0.05]",
    )  # fmt: skip
    no_mlp: bool = option(
        False, "--no-mlp", parse=parse_flag, is_flag=True,
        help="Leave out the baseline, a plain PINN (a two-layer tanh MLP of the DEQ's width under the "
        "same head and losses) trained the same way.",
    )  # fmt: skip
    size: str | None = run_option("size")
    quick: bool = field(
        default=False,
        metadata={
            "option": Option(
                ("--quick",), "Small and fast (what CI runs): the quick size preset, "
                f"{QUICK['steps']} steps, {QUICK['seeds']} seed.", parse_flag, is_flag=True,
            )
        },
    )  # fmt: skip
    device: str = run_option("device", "cpu")
    dtype: str = run_option("dtype", "float64")
    seed: int = run_option("seed", 0)
    threads: int | None = run_option("threads")
    f_solver: str | None = run_option("f_solver")
    b_solver: str | None = run_option("b_solver")
    f_tol: float | None = run_option("f_tol")
    b_tol: float | None = run_option("b_tol")
    f_max_iter: int = run_option("f_max_iter", 500)
    b_max_iter: int = run_option("b_max_iter", 500)

    # ------------------------------------------------------------ derived
    def _pick(self, name: str) -> Any:
        value = getattr(self, name)
        return (QUICK if self.quick else FULL)[name] if value is None else value

    @property
    def step_count(self) -> int:
        return self._pick("steps")

    @property
    def seed_list(self) -> list[int]:
        return [self.seed + i for i in range(self._pick("seeds"))]

    @property
    def test_count(self) -> int:
        return self._pick("test_points")

    @property
    def eval_interval(self) -> int:
        return self._pick("eval_every")

    @property
    def checkpoint_interval(self) -> int:
        return self._pick("checkpoint_every")

    @property
    def preset(self) -> str:
        preset, _ = split_size(self.size)
        return preset or (QUICK if self.quick else FULL)["preset"]

    @property
    def overrides(self) -> dict[str, str]:
        overrides = split_size(self.size)[1]
        if self.collocation is not None:
            overrides["batch"] = str(self.collocation)
        return overrides

    @property
    def sweep_axes(self) -> dict[str, list[str]]:
        """No sweeps in training (what the shared size checks ask)."""
        return {}

    def solver_settings(self) -> dict[str, Any]:
        """What each strategy is built with (a solver left out: the strategy's default)."""
        settings: dict[str, Any] = {"f_max_iter": self.f_max_iter, "b_max_iter": self.b_max_iter}
        for name in ("f_solver", "b_solver", "f_tol", "b_tol"):
            if getattr(self, name) is not None:
                settings[name] = getattr(self, name)
        return settings

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name in train_options()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        check_stored_settings(data, train_options())
        return make_train_settings(**data)


def train_options() -> dict[str, Option]:
    """Setting name -> its command-line option, in the order ``--help`` shows them."""
    return options_of(TrainSettings)


def make_train_settings(**given: Any) -> TrainSettings:
    """Checked settings from what a user gave; BadInput (one line) on the first problem."""
    settings = parse_given(TrainSettings, train_options(), given)
    for reference in settings.problems:
        check_trainable_problem(reference, settings)
    strategies = trainable_strategies(settings)
    settings = replace_strategies(settings, strategies)
    check_sizes(settings)
    return settings


def replace_strategies(settings: TrainSettings, strategies: list[str]) -> TrainSettings:
    from dataclasses import replace

    return replace(settings, strategies=strategies)


def check_trainable_problem(reference: str, settings: TrainSettings) -> None:
    """A problem trains only with a physics loss, and --collocation needs its batch knob."""
    cls = resolve_class(reference, "problem")
    if cls.physics_loss is None or not cls.physics_partials:
        raise BadInput(
            f"problem {cls.name!r} has no physics loss to train on; accepted: {', '.join(physics_problems())}"
        )
    if settings.collocation is not None and "batch" not in cls.presets.get(settings.preset, {}):
        raise BadInput(f"--collocation: problem {cls.name!r} has no batch knob to set")


def physics_problems() -> list[str]:
    """The problems deqbench ships that have a physics loss to train on (a user's problem
    comes by its file path, and classes other code registered in this process are not
    deqbench's to offer)."""
    from deqbench.problems.base import PROBLEMS

    return [
        name
        for name in PROBLEMS.shipped()
        if PROBLEMS.get(name).physics_loss is not None and PROBLEMS.get(name).physics_partials
    ]


def training_queries(settings: TrainSettings) -> list[str]:
    return ["pinn_grad"] + (["grad"] if settings.data_weight else [])


def unable_reason(strategy_cls, problem_cls, queries: list[str]) -> str | None:
    """Why a strategy cannot give a training step's gradients on a problem, or None."""
    from deqbench.backends import jax_unavailable_reason

    missing = [q for q in queries if q not in strategy_cls.supported_queries]
    if missing:
        return f"does not support {', '.join(missing)}"
    if strategy_cls.backend not in problem_cls.backends:
        return f"runs under {strategy_cls.backend}, and problem {problem_cls.name!r} does not"
    if strategy_cls.backend == "jax" and jax_unavailable_reason():
        return jax_unavailable_reason()
    return None


def trainable_strategies(settings: TrainSettings) -> list[str]:
    """The strategies as references: 'all' keeps those that can train on every problem given;
    a named one that cannot is bad input, naming why and what is accepted."""
    from deqbench.strategies.base import STRATEGIES

    problems = [resolve_class(ref, "problem") for ref in settings.problems]
    queries = training_queries(settings)

    def reasons(cls):
        return [r for r in (unable_reason(cls, p, queries) for p in problems) if r]

    able = [name for name in STRATEGIES.shipped() if not reasons(STRATEGIES.get(name))]
    chosen = []
    for name in settings.strategies:
        if name == "all":
            chosen += able
            continue
        refs = references_parser("strategy")(name, "--strategy")
        for ref in refs:
            why = reasons(resolve_class(ref, "strategy"))
            if why:
                raise BadInput(
                    f"strategy {name!r} cannot train here: it {why[0]}; accepted: {', '.join(able)}"
                )
            chosen.append(ref)
    return list(dict.fromkeys(chosen))
