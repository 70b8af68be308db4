"""Fixed-point solvers in JAX: the algorithms of :mod:`deqbench.solvers`, traceable.

Each solver finds ``z = g(z)`` for a batch of independent samples (the leading dimension),
exactly as its torch namesake does: convergence is the worst sample's relative residual
``|g(z) - z| / |g(z)|`` (a zero solution, ``g(z) = z = 0``, counts as converged), a solve that
stops at ``max_iter`` or on a non-finite residual reports ``converged=False``, and Anderson
mixes its history per sample (never coupling samples), with the same relative regularization
and the same fallback to a plain step where a sample's mixing system cannot be solved.

A solver is two pure functions of a :class:`State`: ``init`` (the first evaluation of g, from
z0) and ``step`` (one more evaluation). :func:`solve` runs ``step`` in a
``jax.lax.while_loop`` until convergence, so it works under ``jit``, ``vmap``, ``jvp`` and
inside ``custom_jvp`` rules; :func:`iterate` runs a *static* number of steps in a
``jax.lax.scan``, which reverse-mode autodiff can go through (it cannot go through a
``while_loop``): what the `jax-unrolled` strategy differentiates. Both take the same steps,
so ``iterate(name, g, z0, info.iterations)`` reproduces ``solve``'s answer.

Anderson keeps its history in fixed-size ring buffers (``memory`` slots, a validity mask
while it fills) because array shapes under ``jit`` are static; the weights are invariant to
the order of the history, so this is the torch solver's sliding window, reordered.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve

Array = jax.Array
Map = Callable[[Array], Array]


class SolveInfo(NamedTuple):
    """What one solve did, as scalar arrays (a NamedTuple is a pytree: it leaves a jit)."""

    iterations: Array  # int
    nfev: Array  # int, evaluations of g
    residual: Array  # float: the worst sample's |g(z) - z| / |g(z)| at the end
    converged: Array  # bool: residual <= tol (NaN -> False)


class State(NamedTuple):
    """A solver's carry: evaluations so far, the newest image g(z), its residual, history."""

    k: Array  # evaluations of g so far (int32)
    z: Array  # the newest image g(z), the shape of z0: the current answer
    residual: Array  # worst sample's relative residual of that image
    history: Any  # the solver's own memory (Anderson's buffers; () for plain iteration)


class Solver(NamedTuple):
    init: Callable[[Map, Array], State]
    step: Callable[..., State]  # step(g, state, differentiable=False): see mixing_weights


# ------------------------------------------------------------------ residuals
def per_sample_norm(a: Array) -> Array:
    return jnp.sqrt(jnp.sum(a.reshape(a.shape[0], -1) ** 2, axis=1))


def worst_relative(difference: Array, reference: Array) -> Array:
    """max over samples of |difference| / |reference| (0 where both vanish).

    Convergence bookkeeping only: no derivative flows through it (the derivative of a norm
    at zero is NaN, and a zero cotangent times NaN would poison an unrolled backward pass).
    """
    difference, reference = jax.lax.stop_gradient((difference, reference))
    scale = jnp.maximum(per_sample_norm(reference), jnp.finfo(reference.dtype).tiny)
    return jnp.max(per_sample_norm(difference) / scale)


# ------------------------------------------------------------ plain iteration
def _fixed_point_init(g: Map, z0: Array) -> State:
    z = g(z0)
    return State(jnp.int32(1), z, worst_relative(z - z0, z), ())


def _fixed_point_step(g: Map, state: State, differentiable: bool = False) -> State:
    z = g(state.z)
    return State(state.k + 1, z, worst_relative(z - state.z, z), ())


FIXED_POINT = Solver(_fixed_point_init, _fixed_point_step)


# ------------------------------------------------------------------- anderson
class AndersonHistory(NamedTuple):
    images: Array  # (batch, memory, d): g(z_i), flattened per sample
    residuals: Array  # (batch, memory, d): g(z_i) - z_i
    gram: Array  # (batch, memory, memory): residuals' inner products


def relative_regularization(regularization: float, dtype) -> float:
    """The ridge on the normalised Gram matrix, at least ten eps of ``dtype`` (see
    :func:`deqbench.solvers.relative_regularization` for why)."""
    return max(regularization, 10 * float(jnp.finfo(dtype).eps))


def mixing_weights(
    gram: Array, valid: Array, newest: Array, regularization: float, differentiable: bool = False
) -> Array:
    """Per-sample Anderson weights (batch, memory), summing to one over the valid slots.

    The weights solve ``(G / scale + reg I) w = 1`` on the valid slots (the others are made
    identity rows with a zero right-hand side, so their weights are exactly zero and the
    valid ones are those of the reduced system). A sample whose weights are not finite (a
    singular system, a NaN residual) takes the plain fixed-point step instead: weight one
    on its newest image. With ``differentiable`` (a solve that autodiff goes through) the
    failed samples' weights are solved again from a harmless system, so that their
    cotangents stay finite; otherwise a plain ``where`` picks the fallback (the same values,
    and a cheaper compile: no second factorization in the loop body).
    """
    memory = gram.shape[-1]
    eye = jnp.eye(memory, dtype=gram.dtype)
    diagonal = jnp.where(valid, jnp.diagonal(gram, axis1=1, axis2=2), 0)
    scale = jnp.maximum(jnp.max(diagonal, axis=1), jnp.finfo(gram.dtype).tiny)
    both = valid[:, None] & valid[None, :]
    system = jnp.where(both, gram / scale[:, None, None] + regularization * eye, eye)
    ones = jnp.broadcast_to(valid.astype(gram.dtype), gram.shape[:2])
    alpha = _normalised_solve(system, ones)
    finite = jnp.all(jnp.isfinite(alpha), axis=1)
    if not differentiable:
        newest_only = jax.nn.one_hot(newest, memory, dtype=gram.dtype)
        return jnp.where(finite[:, None], alpha, newest_only)
    # The usual case costs one batched solve; only a step where a sample failed pays for a second.
    return jax.lax.cond(
        jnp.all(finite),
        lambda: alpha,
        lambda: _fixed_point_step_where(~finite, system, ones, newest),
    )


def _normalised_solve(system: Array, rhs: Array) -> Array:
    # The regularized normalised Gram matrix is symmetric positive definite: Cholesky is
    # exact for it, and compiles in a fifth of the time of jnp.linalg.solve (measured: 0.2
    # vs 1.2 s on CPU). A factorization that fails gives NaN, which the caller catches.
    weights = cho_solve(cho_factor(system), rhs[..., None])[..., 0]
    return weights / jnp.sum(weights, axis=1, keepdims=True)


def _fixed_point_step_where(failed: Array, system: Array, rhs: Array, newest: Array) -> Array:
    """Weights solved again with the failed samples' systems swapped for the identity, then
    one-hot on the newest image there. Solving again (rather than masking the first answer)
    keeps reverse mode finite: a NaN masked by ``where`` still turns its cotangent into NaN."""
    eye = jnp.eye(system.shape[-1], dtype=system.dtype)
    alpha = _normalised_solve(jnp.where(failed[:, None, None], eye, system), rhs)
    newest_only = jax.nn.one_hot(newest, system.shape[-1], dtype=system.dtype)
    return jnp.where(failed[:, None], newest_only, alpha)


def _record(history: AndersonHistory, slot: Array, image: Array, residual: Array) -> AndersonHistory:
    """Write one step into ``slot`` and its row and column of the Gram matrix."""
    images = history.images.at[:, slot].set(image)
    residuals = history.residuals.at[:, slot].set(residual)
    row = jnp.einsum("bd,bid->bi", residual, residuals)
    gram = history.gram.at[:, slot, :].set(row).at[:, :, slot].set(row)
    return AndersonHistory(images, residuals, gram)


def anderson(memory: int = 6, regularization: float = 1e-10) -> Solver:
    """Anderson acceleration (type II) with ``memory`` steps, mixed per sample.

    The weights solve, for each sample, ``min |sum_i a_i r_i|`` with ``sum_i a_i = 1`` over
    the residuals ``r_i = g(z_i) - z_i`` in the history; the next iterate is
    ``sum_i a_i g(z_i)`` (:func:`mixing_weights`).
    """

    def init(g: Map, z0: Array) -> State:
        batch = z0.shape[0]
        image = g(z0).reshape(batch, -1)
        residual = image - z0.reshape(batch, -1)
        empty = jnp.zeros((batch, memory, image.shape[1]), image.dtype)
        history = AndersonHistory(empty, empty, jnp.zeros((batch, memory, memory), image.dtype))
        history = _record(history, jnp.int32(0), image, residual)
        return State(jnp.int32(1), image.reshape(z0.shape), worst_relative(residual, image), history)

    def step(g: Map, state: State, differentiable: bool = False) -> State:
        history, shape = state.history, state.z.shape
        batch = shape[0]
        slots = jnp.arange(memory)
        valid = slots < jnp.minimum(state.k, memory)  # the ring fills slots 0, 1, ... in order
        newest = (state.k - 1) % memory
        ridge = relative_regularization(regularization, history.gram.dtype)
        alpha = mixing_weights(history.gram, valid, newest, ridge, differentiable)
        mixed = jnp.einsum("bi,bid->bd", alpha, history.images)
        image = g(mixed.reshape(shape)).reshape(batch, -1)
        residual = image - mixed
        history = _record(history, state.k % memory, image, residual)
        return State(state.k + 1, image.reshape(shape), worst_relative(residual, image), history)

    return Solver(init, step)


# ------------------------------------------------------------------- drivers
#: The (init, step) pair of each solver, by the names of deqbench.solvers.SOLVERS.
METHODS: dict[str, Solver] = {"fixed_point": FIXED_POINT, "anderson": anderson()}


def method(name: str) -> Solver:
    """A solver's (init, step) by name, with a clear error for an unknown one."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; known: {', '.join(METHODS)}") from None


def solve(name: str, g: Map, z0: Array, *, tol: float, max_iter: int) -> tuple[Array, SolveInfo]:
    """Iterate until the worst sample's relative residual is <= tol, or ``max_iter``
    evaluations of g, or a non-finite residual; the answer and what the solve did.

    A ``while_loop``: traceable under jit, vmap, jvp and custom_jvp rules, not reverse-mode
    differentiable (see :func:`iterate`).
    """
    return run_until_converged(method(name), g, z0, tol=tol, max_iter=max_iter)


def run_until_converged(solver: Solver, g: Map, z0: Array, *, tol: float, max_iter: int):
    def unfinished(state: State) -> Array:
        # NaN > tol is False: a blown-up solve stops, and is reported not converged.
        return (state.k < max_iter) & (state.residual > tol) & jnp.isfinite(state.residual)

    state = jax.lax.while_loop(unfinished, lambda state: solver.step(g, state), solver.init(g, z0))
    return state.z, info(state, tol)


#: Each solver as ``solver(g, z0, *, tol, max_iter) -> (z, SolveInfo)``, by the names of
#: deqbench.solvers.SOLVERS.
SOLVERS: dict[str, Callable[..., tuple[Array, SolveInfo]]] = {
    name: functools.partial(run_until_converged, solver) for name, solver in METHODS.items()
}


def iterate(name: str, g: Map, z0: Array, iterations: int, *, tol: float) -> tuple[Array, SolveInfo]:
    """Exactly ``iterations`` evaluations of g (a static int >= 1), the steps :func:`solve`
    takes, in a ``lax.scan`` that reverse-mode autodiff can differentiate; the info says
    whether those steps reached ``tol``."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    solver = method(name)
    state = solver.init(g, z0)
    state, _ = jax.lax.scan(
        lambda s, _: (solver.step(g, s, differentiable=True), None), state, None, length=iterations - 1
    )
    return state.z, info(state, tol)


def info(state: State, tol: float) -> SolveInfo:
    residual = jax.lax.stop_gradient(state.residual)
    return SolveInfo(state.k, state.k, residual, residual <= tol)
