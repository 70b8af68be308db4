"""The Problem interface: a DEQ layer, its parameters, inputs, directions and losses.

A problem instance holds everything a query needs:

- ``f(theta, x, z)``: the layer, batched over samples (``x``: (batch, n), ``z``: (batch, m)),
  with ``theta`` a dict of named parameter tensors. Samples must be independent.
- ``theta``, ``x``: the parameter values and the inputs the queries are evaluated at.
- ``directions``: named vectors in input space, one character a name (``"t"``, ``"x"``,
  ``"y"``). ``jvp`` and ``jvp2`` differentiate along ``directions[jvp_direction]`` (``"t"``).
- ``data_loss(theta, x, z)``: a scalar loss on z* (the ``grad`` query).
- ``physics_loss(theta, x, z, d)``: a scalar loss on z* and the partial derivatives of z*
  that ``physics_partials`` names (``pinn_grad``). ``d[name]`` is a (batch, m) tensor.
- ``physics2_loss(theta, x, z, d)``: the same on ``physics2_partials`` (``pinn2_grad``, the
  higher-order query: a second-order residual's form, or a residual's derivative).

**Partials by name.** ``physics_partials = {"u_t": "t", "u_xx": "xx", "u_txx": "txx"}``: each
value is a multi-index over the direction names, one character a direction, order 1 to 3,
mixed ones included. Every strategy that claims exactness delivers them exactly
(docs/explanations/mathematics.md: pure directional derivatives from the Taylor map, mixed
ones by polarization or nested tangents) and both oracles compute them independently.

A problem without a physics loss simply does not exercise the queries that need one.

**One definition, two frameworks.** Write the equations (``f``, ``output``, the losses)
against ``self.xp``, the array namespace of the instance's backend (``torch``, or
``jax.numpy`` on the copy :meth:`Problem.for_backend` makes), and declare
``backends = ("torch", "jax")``. The numbers are drawn once, in torch, in ``build``; the JAX
copy holds the same numbers converted. A problem that calls torch directly keeps the default
``backends = ("torch",)`` and is listed as unavailable to JAX strategies, with the reason.

The contract a subclass implements is :class:`Problem`'s docstring; defining a class that
breaks it is a TypeError at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch

from deqbench import backends as array_backends
from deqbench.partials import MultiIndex, PolarizationPlan, parse_multi_index
from deqbench.queries import QUERIES
from deqbench.registry import Registry

PROBLEMS: Registry[Problem] = Registry("problem", "deqbench.problems")

Theta = dict[str, torch.Tensor]

#: The physics queries: the loss each differentiates and the attribute naming its partials.
PHYSICS_QUERIES = {
    "pinn_grad": ("physics_loss", "physics_partials"),
    "pinn2_grad": ("physics2_loss", "physics2_partials"),
}


class Problem:
    """Base class of every problem family. A subclass that sets ``name`` is registered.

    **Required** (checked when the class is defined; a TypeError names what is missing):

    - ``name`` (str): the registry name, unique (``deqbench run --problem NAME``). A class
      without one is an abstract helper and is neither checked nor registered.
    - ``presets``: named sizes, ``{"quick": {"m": 8, "n": 3, ...}, "default": {...}}``.
      Every preset names the same knobs (``--size`` and ``--sweep`` override them by name,
      cast to the preset's type); ``"quick"`` is what CI and ``--quick`` run, ``"default"``
      what a plain ``deqbench.get_problem(name)`` builds.
    - ``build(self, generator, **knobs)``: set ``self.theta`` (dict of named tensors),
      ``self.x`` (batch, n) and ``self.directions`` (one-character names, each of shape
      (n,), ``jvp_direction`` among them) from the knobs. Draw random numbers with
      ``self.randn(generator, ...)`` (seeded, identical on every device and dtype) and
      build tensors in ``self.dtype`` on ``self.device``.
    - ``f(self, theta, x, z)``: the layer, batched over independent samples; z* is its
      attracting fixed point (the oracle checks that it attracts).

    **Optional:**

    - ``description``: one line for ``deqbench list``.
    - ``backends`` (``("torch",)``): the frameworks the equations run under. Add ``"jax"``
      only if ``f``, ``output`` and the losses use ``self.xp`` and nothing torch-specific
      (the test suite checks that both give the same values).
    - ``data_loss(theta, x, z)`` (default: half the mean squared ``output``) for ``grad``;
      ``output(theta, z)`` (default: z itself), the model's head.
    - ``physics_partials`` with ``physics_loss(theta, x, z, d)``, and ``physics2_partials``
      with ``physics2_loss(theta, x, z, d)`` (default: none, and the ``pinn_grad`` /
      ``pinn2_grad`` queries are unsupported on the problem): named partials of z*
      (``{"z_t": "t", "z_xx": "xx"}``, see the module docstring) and a scalar loss on z* and
      ``d``, the dict of those partials, each (batch, m).
    - ``jvp_direction`` (``"t"``): the direction ``jvp`` and ``jvp2`` differentiate along.
    - ``reference(query)``: a closed-form answer (dict of tensors, the oracle's keys) where
      the problem has one; the test suite checks the oracle against it. None by default.
    - ``z_init()``: the solvers' starting point (default: zeros, (batch, m)).
    - ``hessian_max_n`` (8): the largest input dimension n the dense ``hessian`` query runs at.
    - ``m``: the state width; the ``m`` knob by default, so a problem whose presets have no
      ``m`` knob must override the ``m`` property.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Named sizes; every preset names the same knobs. "quick" is what CI runs.
    presets: ClassVar[dict[str, dict[str, Any]]] = {"default": {}}
    #: The `hessian` query builds a (batch, m, n, n) tensor: only for inputs this small.
    hessian_max_n: ClassVar[int] = 8
    #: The frameworks whose arrays f, output and the losses accept (through ``self.xp``).
    backends: ClassVar[tuple[str, ...]] = ("torch",)
    #: The direction (a key of ``directions``) that ``jvp`` and ``jvp2`` differentiate along.
    jvp_direction: ClassVar[str] = "t"
    #: The partials of z* each physics loss is built on: {name: multi-index such as "txx"}.
    physics_partials: ClassVar[Mapping[str, str]] = {}
    physics2_partials: ClassVar[Mapping[str, str]] = {}
    #: The array namespace the equations call: torch here, jax.numpy on a JAX copy.
    xp: Any = torch
    backend: str = "torch"

    theta: Theta
    x: torch.Tensor
    directions: dict[str, torch.Tensor]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:  # abstract helpers set no name and stay unregistered
            check_contract(cls)
            PROBLEMS.add(cls)

    def __init__(
        self,
        preset: str = "default",
        *,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        seed: int = 0,
        **overrides: Any,
    ):
        self.preset = preset
        self.size = self.resolve_size(preset, overrides)
        self.dtype = dtype
        self.device = torch.device(device)
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        self.build(generator, **self.size)
        self._check_built()

    # ----------------------------------------------------------------- sizes
    @classmethod
    def resolve_size(cls, preset: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """The preset's knobs with overrides applied; unknown names are an error."""
        if preset not in cls.presets:
            raise ValueError(
                f"problem {cls.name!r} has no size preset {preset!r}; known: {', '.join(cls.presets)}"
            )
        size = dict(cls.presets[preset])
        unknown = sorted(set(overrides) - set(size))
        if unknown:
            raise ValueError(
                f"problem {cls.name!r} has no size knob {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(size)}"
            )
        for key, value in overrides.items():
            size[key] = type(size[key])(value)
        return size

    # -------------------------------------------------------- to be provided
    def build(self, generator: torch.Generator, **size: Any) -> None:
        """Set ``theta``, ``x`` and ``directions`` from the size knobs."""
        raise NotImplementedError

    def f(self, theta: Theta, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def data_loss(self, theta: Theta, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Default: half the mean squared model output."""
        return 0.5 * self.xp.mean(self.output(theta, z) ** 2)

    def output(self, theta: Theta, z: torch.Tensor) -> torch.Tensor:
        """The model output built on z* (a head); the identity by default."""
        return z

    physics_loss: Callable[..., torch.Tensor] | None = None
    physics2_loss: Callable[..., torch.Tensor] | None = None

    def physics_terms(self, theta: Theta, x: torch.Tensor, z: torch.Tensor, d) -> dict[str, torch.Tensor]:
        """``physics_loss`` split into named terms that sum to it (``deqbench train`` records
        each: an ODE residual apart from an initial-condition term, say). One term by default."""
        return {"physics": self.physics_loss(theta, x, z, d)}

    def summed_physics_terms(self, theta: Theta, x: torch.Tensor, z: torch.Tensor, d) -> torch.Tensor:
        """The sum of ``physics_terms``: the ``physics_loss`` of a problem that defines its
        terms (``physics_loss = Problem.summed_physics_terms``), so the two cannot disagree."""
        return sum(self.physics_terms(theta, x, z, d).values())

    def reference(self, query: str) -> dict[str, torch.Tensor] | None:
        """A closed-form answer for a query, where the problem has one."""
        return None

    # ------------------------------------------------------------- helpers
    def mean_square(self, residual):
        """The mean over samples of a (batch, k) residual's squared norm, in ``self.xp``."""
        return self.xp.mean(self.xp.sum(residual**2, axis=1))

    # ------------------------------------------------------------- derived
    def tensor(self, data, **kwargs) -> torch.Tensor:
        return torch.as_tensor(data, dtype=self.dtype, device=self.device, **kwargs)

    def randn(self, generator: torch.Generator, *shape: int) -> torch.Tensor:
        """Seeded normal samples, drawn in float64 on the CPU whatever the device and dtype."""
        sample = torch.randn(*shape, generator=generator, dtype=torch.float64)
        return sample.to(dtype=self.dtype, device=self.device)

    def uniform(self, generator: torch.Generator, *shape: int) -> torch.Tensor:
        """Seeded U[0, 1) samples, drawn in float64 on the CPU whatever the device and dtype."""
        return self.tensor(torch.rand(*shape, generator=generator, dtype=torch.float64))

    def z_init(self):
        """The solvers' starting point, zeros (batch, m), in the instance's backend."""
        return self.on_backend(torch.zeros(self.batch, self.m, dtype=self.dtype, device=self.device))

    def on_backend(self, tensor: torch.Tensor):
        """A torch tensor as an array of this instance's backend (itself under torch)."""
        if self.backend == "torch":
            return tensor
        return array_backends.to_jax(tensor, self.device)

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def n(self) -> int:
        return self.x.shape[1]

    @property
    def m(self) -> int:
        """State width: the ``m`` size knob (override where the state is sized otherwise)."""
        return self.size["m"]

    def direction(self, query: str = "jvp") -> torch.Tensor:
        """The input direction ``jvp`` and ``jvp2`` differentiate along."""
        return self.directions[self.jvp_direction]

    def physics_query(self, query: str) -> tuple[Callable[..., torch.Tensor] | None, dict[str, MultiIndex]]:
        """The loss of a physics query (``pinn_grad``, ``pinn2_grad``) and its named partials,
        each a sorted multi-index of direction names; (None, {}) where the problem has none."""
        loss_name, partials_name = PHYSICS_QUERIES[query]
        loss, specs = getattr(self, loss_name), getattr(self, partials_name)
        if loss is None or not specs:
            return None, {}
        return loss, {name: parse_multi_index(spec, list(self.directions)) for name, spec in specs.items()}

    def partials_plan(self, query: str) -> PolarizationPlan:
        """The polarization plan of a physics query's partials (its lines and weights)."""
        return PolarizationPlan.of(self.physics_query(query)[1], list(self.directions))

    def backend_unavailable_reason(self, backend: str) -> str | None:
        """Why this problem cannot run under ``backend``, or None if it can."""
        array_backends.check_backend(backend)
        if backend not in self.backends:
            return (
                f"problem {self.name!r} runs under {', '.join(self.backends)} only: its equations do not "
                f"declare {backend!r} in `backends` (write them against `self.xp` to add it)"
            )
        if backend == "jax":
            return array_backends.jax_unavailable_reason()
        return None

    def for_backend(self, backend: str):
        """This instance for ``backend``: itself for torch; for JAX a copy whose every tensor
        attribute (and dict of tensors) is a JAX array on the matching device, holding the same
        numbers, with ``xp`` = ``jax.numpy``."""
        if backend == self.backend:
            return self
        copies = self.__dict__.setdefault("_backend_copies", {})
        if backend not in copies:  # converted once: a strategy compiles once per instance
            copies[backend] = self._converted(backend)
        return copies[backend]

    def _converted(self, backend: str):
        reason = self.backend_unavailable_reason(backend)
        if reason is not None:
            raise ValueError(reason)
        if self.backend != "torch":
            raise ValueError(f"only a torch instance converts to another backend, not a {self.backend} one")
        clone = copy.copy(self)
        state = {k: v for k, v in self.__dict__.items() if k != "_backend_copies"}
        clone.__dict__ = {k: array_backends.to_jax(v, self.device) for k, v in state.items()}
        clone.xp, clone.backend = array_backends.namespace(backend), backend
        return clone

    def unsupported_reason(self, query: str) -> str | None:
        """Why this problem cannot pose a query, or None if it can."""
        if query in PHYSICS_QUERIES and self.physics_query(query)[0] is None:
            loss_name, partials_name = PHYSICS_QUERIES[query]
            return f"problem {self.name!r} has no {loss_name} (with {partials_name}) for {query}"
        if query == "hessian" and self.n > self.hessian_max_n:
            return f"input dimension n={self.n} > {self.hessian_max_n} for a dense Hessian"
        return None

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None):
        """A copy with every tensor attribute (and dict of tensors) moved and cast (torch)."""
        if self.backend != "torch":
            raise ValueError("Problem.to() moves torch instances; build a JAX one with for_backend('jax')")
        device = self.device if device is None else torch.device(device)
        dtype = self.dtype if dtype is None else dtype

        def convert(value):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                return value.detach().to(device=device, dtype=dtype)
            if isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values()):
                return {k: convert(v) for k, v in value.items()}
            return value

        clone = copy.copy(self)
        # the JAX copies belong to this instance's numbers, not to the moved ones
        clone.__dict__ = {k: convert(v) for k, v in self.__dict__.items() if k != "_backend_copies"}
        clone.device, clone.dtype = device, dtype
        return clone

    def instance_key(self) -> dict[str, Any]:
        """What identifies this instance's numbers (the oracle cache key)."""
        return {
            "problem": self.name,
            **self.size,
            "seed": self.seed,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def _check_built(self) -> None:
        for attr in ("theta", "x", "directions"):
            if not hasattr(self, attr):
                raise TypeError(f"{type(self).__name__}.build() did not set `{attr}`")
        if self.x.ndim != 2:
            raise TypeError(f"{type(self).__name__}: x must be (batch, n), got {tuple(self.x.shape)}")
        if self.jvp_direction not in self.directions:
            raise TypeError(
                f"{type(self).__name__}: directions must include jvp_direction {self.jvp_direction!r}"
            )
        for key, e in self.directions.items():
            if len(key) != 1:
                raise TypeError(f"{type(self).__name__}: direction name {key!r} must be one character")
            if e.shape != (self.n,):
                raise TypeError(f"direction {key!r} must have shape ({self.n},)")
        for query in PHYSICS_QUERIES:
            try:
                self.physics_query(query)
            except ValueError as error:
                raise TypeError(f"{type(self).__name__}: {PHYSICS_QUERIES[query][1]}: {error}") from None

    def __repr__(self) -> str:
        knobs = ", ".join(f"{k}={v}" for k, v in self.size.items())
        return f"{type(self).__name__}({knobs}, seed={self.seed}, dtype={self.dtype})"


class FunctionProblem(Problem):
    """A problem built from a user's own layer in a few lines, without a subclass.

    >>> problem = FunctionProblem(f=my_layer, theta={"W": W}, x=x, m=16)

    Its one direction is ``"t"``, the first input coordinate, unless ``directions`` says
    otherwise; ``physics_loss(theta, x, z, d)`` gets ``d = {"z_t": dz*/dt}`` unless
    ``physics_partials`` names others (``physics2_loss``: ``{"z_t", "z_tt"}`` by default).
    """

    def __init__(
        self,
        *,
        f: Callable[[Theta, torch.Tensor, torch.Tensor], torch.Tensor],
        theta: Theta,
        x: torch.Tensor,
        m: int,
        directions: dict[str, torch.Tensor] | None = None,
        data_loss: Callable[..., torch.Tensor] | None = None,
        physics_loss: Callable[..., torch.Tensor] | None = None,
        physics2_loss: Callable[..., torch.Tensor] | None = None,
        physics_partials: Mapping[str, str] | None = None,
        physics2_partials: Mapping[str, str] | None = None,
        name: str = "custom",
    ):
        self.name = name  # instance attribute: a function problem is never registered
        self.preset, self.size, self.seed = "custom", {"m": m}, 0
        self.dtype, self.device = x.dtype, x.device
        self._f, self._m = f, m  # a user's torch functions: torch only (the default `backends`)
        self.theta, self.x = dict(theta), x
        if directions is None:
            e = torch.zeros(x.shape[1], dtype=x.dtype, device=x.device)
            e[0] = 1
            directions = {"t": e}
        self.directions = directions
        if data_loss is not None:
            self.data_loss = data_loss
        # default partials: dz*/dt for the first loss, dz*/dt and d2z*/dt2 for the second
        self.physics_loss, self.physics2_loss = physics_loss, physics2_loss
        self.physics_partials = dict(physics_partials or {"z_t": "t"})
        self.physics2_partials = dict(physics2_partials or {"z_t": "t", "z_tt": "tt"})
        self._check_built()

    def f(self, theta, x, z):
        return self._f(theta, x, z)

    @property
    def m(self) -> int:
        return self._m


def check_contract(cls: type[Problem]) -> None:
    """TypeError, naming the class and what it lacks, if it cannot build an instance."""
    missing = [
        signature
        for method, signature in (("build", "build(self, generator, **knobs)"), ("f", "f(self, theta, x, z)"))
        if getattr(cls, method) is getattr(Problem, method)
    ]
    if missing:
        raise TypeError(f"{cls.__name__} must define {' and '.join(missing)}")
    knobs = check_presets(cls)
    if "m" not in knobs and cls.m is Problem.m:
        raise TypeError(f"{cls.__name__}: its presets have no 'm' knob, so it must override the `m` property")


def check_presets(cls: type[Problem]) -> list[str]:
    """The knob names every preset shares; TypeError if there are no presets or they differ."""
    presets = cls.presets
    if not isinstance(presets, Mapping) or not presets:
        raise TypeError(f"{cls.__name__}.presets must be a non-empty dict of named sizes")
    not_dicts = [name for name, size in presets.items() if not isinstance(size, Mapping)]
    if not_dicts:
        raise TypeError(f"{cls.__name__}: presets {not_dicts} must each be a dict of knobs")
    knob_sets = {name: list(size) for name, size in presets.items()}
    first_name, first = next(iter(knob_sets.items()))
    differing = {name: knobs for name, knobs in knob_sets.items() if set(knobs) != set(first)}
    if differing:
        shown = {first_name: first, **differing}
        described = "; ".join(f"{name!r} names {', '.join(knobs)}" for name, knobs in shown.items())
        raise TypeError(f"{cls.__name__}: every preset must name the same knobs, but {described}")
    return first


def supported_queries(problem: Problem) -> list[str]:
    return [q for q in QUERIES if problem.unsupported_reason(q) is None]
