"""What the peer strategies share: other libraries' code, measured side by side with ours.

A peer strategy runs another library (torchdeq, optimistix, jaxopt) the way its
documentation shows and a typical user writes it, on the same problems, dtype, tolerances
and iteration budgets as deqbench's own strategies wherever the library takes them. Where it
does not (its own stopping rule, a solver it lacks), :meth:`Peer.differences` says how, and
every row of its cells records that sentence (the ``peer_differences`` column).

The libraries are an optional extra (``pip install 'deqbench[peers]'``, pinned versions:
the verdicts are those of a version). Without them, or with another version, each peer is
listed, and each of its cells recorded, as unavailable with the reason; nothing here imports
a library at module level (the registry imports every strategy module in every run).
"""

from __future__ import annotations

import functools
import importlib.metadata
from typing import ClassVar

#: The extra that installs every peer library at its pinned version.
EXTRA = "pip install 'deqbench[peers]'"


@functools.cache  # installed or not, it stays so for the process: look once
def missing_requirement(requirements: tuple[tuple[str, str], ...]) -> str | None:
    """Why the pinned ``(package, version)`` pairs cannot be used here, or None; reads the
    installed versions without importing anything."""
    for package, version in requirements:
        try:
            found = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return f"requires {package}=={version}: {EXTRA}"
        if found != version:
            return f"requires {package}=={version} (the version its verdicts are of), found {found}: {EXTRA}"
    return None


class Peer:
    """Mixin of the peer strategies (put it first: ``class X(Peer, AutogradStrategy)``).

    A subclass sets ``requirements`` (the pinned packages it imports) and ``peer`` (the
    library and version, for ``deqbench list`` and the rows), and says in
    :meth:`differences` where its settings differ from deqbench's.
    """

    requirements: ClassVar[tuple[tuple[str, str], ...]] = ()

    def unsupported_reason(self, query, problem):
        refusal = self.refusal(query)
        if refusal is not None:  # a query the library cannot answer says so, installed or not
            return refusal
        return missing_requirement(self.requirements) or super().unsupported_reason(query, problem)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this peer cannot run here (its library missing or another version), or None."""
        return missing_requirement(cls.requirements)

    def differences(self) -> str:
        """How this peer's settings differ from deqbench's own ("" when they do not)."""
        return ""


#: What JAX raises (jax 0.10.2) when a custom_vjp function meets forward mode: a tangent
#: along an input direction (jax.jvp, jax.jacfwd), and any transform of such a tangent (a
#: second jvp over it, or the gradient of a physics loss built on it). Found by running
#: them; the peer tests run them again and check these messages.
JVP_OF_CUSTOM_VJP = "TypeError: can't apply forward-mode autodiff (jvp) to a custom_vjp function."
TRANSFORM_OF_THAT_JVP = "NotImplementedError: Differentiation rule for 'custom_lin' not implemented"
#: The queries that take a tangent along an input direction, and what JAX says to each.
FORWARD_MODE_QUERIES = {
    "jvp": JVP_OF_CUSTOM_VJP,
    "jvp2": TRANSFORM_OF_THAT_JVP,
    "hessian": JVP_OF_CUSTOM_VJP,
    "pinn_grad": TRANSFORM_OF_THAT_JVP,
    "pinn2_grad": TRANSFORM_OF_THAT_JVP,
}


#: What JAX raises when reverse mode meets reverse mode through a solver's own while_loop:
#: a physics loss's partials by ``jax.jacrev``, then its gradient (RecursiveCheckpointAdjoint).
REVERSE_OF_A_WHILE_LOOP = (
    "ValueError: Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop "
    "with dynamic start/stop values. Try using lax.scan, or using fori_loop with static start/stop."
)
#: The physics queries, which a reverse-only library's user builds by ``jax.jacrev`` instead.
PHYSICS_QUERIES = ("pinn_grad", "pinn2_grad")


def reverse_only_refusals(library: str, physics: str | None = None) -> dict[str, str]:
    """The refusals of a library whose solve is a custom_vjp (reverse mode only): each
    forward-mode query with JAX's message; the physics queries with ``physics``, what JAX
    raises on their reverse-mode composition, or none (answered by ``jax.jacrev``)."""
    refusals = {
        query: f"{library} is reverse-mode only (a custom_vjp): JAX raises {message}"
        for query, message in FORWARD_MODE_QUERIES.items()
        if query not in PHYSICS_QUERIES
    }
    if physics is not None:
        for query in PHYSICS_QUERIES:
            refusals[query] = (
                f"{library} is reverse-mode only, and the gradient of a loss on partials taken by "
                f"jax.jacrev differentiates its loop in reverse mode twice: JAX raises {physics}"
            )
    return refusals
