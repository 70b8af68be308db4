"""A second, independent oracle, in JAX: the same answers as ``oracle.py`` by another route.

Two oracles that agree to 1e-10 on every problem and query while sharing no code make a bug
in either visible. This one takes nothing from ``oracle.py`` but its two containers
(``OracleAnswer``, ``OracleError``), and nothing from the strategies or the solvers: its own
Newton iteration, its own dense Jacobians (``jax.jacfwd``, vmapped per sample) and its own
implicit derivatives. Where the torch oracle writes each derivative formula out by hand, this
one writes only the first-order rule and lets JAX's transforms compose it.

How it computes, in float64 on the CPU:

- **Fixed point.** Newton's method on ``f(z) - z`` with dense per-sample Jacobians, damped
  per sample by step halving (a step is kept once it lowers that sample's residual, which a
  Newton step does when it is short enough), to ``|f(z) - z| <= 1e-13 |z|``. The fixed point
  must attract (spectral radius of ``J`` below 1): the DEQ's own iteration would not find a
  repelling one.
- **Implicit derivatives.** ``z*(theta, x)`` is a ``jax.custom_jvp`` function whose rule
  solves ``(I - J) dz = f_theta[dtheta] + f_x[dx]``, one dense ``m x m`` solve per sample
  (``jnp.linalg.solve``). The rule takes every partial at ``z*(theta, x)``, which it gets by
  calling the function again, so differentiating the rule differentiates ``z*`` through the
  same rule once more: the rule composes to any order (as in jaxopt's ``implicit_diff``).
  The tangent is a ``jax.jvp`` of ``f`` at fixed ``z`` and then a solve, linear in
  ``(dtheta, dx)``, so reverse mode can transpose it.
- **Queries** are plain transforms of ``z*``: ``jax.jvp`` along ``e`` (nested for the second
  derivative) and ``jax.grad`` of the query's loss in ``theta``; a physics loss's named
  partials are nested ``jax.jvp`` calls, one a direction of the multi-index. The input Hessian is
  polarized from nested jvps along ``e_k`` and ``e_k + e_l`` (see ``input_hessian``).
- **Error estimates** (relative; absolute for a value that is exactly zero). For ``forward``,
  the size of one more Newton correction. For every derivative, central differences at steps
  ``h`` and ``h/2``, Richardson-extrapolated (error O(h^4)), of the next-lower quantity, each
  point a fresh Newton solve: ``jvp`` against differences of ``z*``; ``jvp2``, and the
  Hessian on two random directions, against differences of the first-order jvp; a gradient
  against differences of the loss along a random direction in that parameter. No difference
  uses the rule at the order it checks.

**Why nothing is jit-compiled.** The Newton iteration decides in Python when it has
converged, so it needs concrete arrays, and ``custom_jvp`` gives it concrete arrays under
every transform used here. Run op by op, JAX compiles each operation once per signature for
the whole process, and later problems of the same shapes reuse those compilations; compiling
a whole query instead took several seconds per query and problem, more than it saves on
these small matrices. For the same reason the Newton bookkeeping is NumPy's, and tangents
that are symbolic zeros are left out of the rule's jvp.

JAX is imported only inside functions, through ``deqbench.backends.import_jax`` (float64 on):
importing this module costs a torch-only run nothing.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deqbench.backends import import_jax, to_torch
from deqbench.harness.oracle.accuracy import relative_error
from deqbench.harness.oracle.torch_oracle import OracleAnswer, OracleError
from deqbench.queries import UnsupportedQueryError, check_query_name

#: Newton stops when every sample's residual |f(z) - z| is this small relative to |z|.
NEWTON_TOL = 1e-13
NEWTON_MAX_ITER = 60
#: A damped Newton step is halved at most this often (2^-30 ~ 1e-9 of a full step).
MAX_HALVINGS = 30
#: Central-difference step, relative to the scale of what is perturbed: with Richardson
#: extrapolation the truncation error is O(h^4) and the rounding error O(eps / h), balanced
#: near h ~ eps^(1/5) ~ 1e-3.
FD_STEP = 1e-3
#: A parameter's gradient this small relative to the whole gradient is rounding noise (a
#: parameter z* does not depend on): it is returned as exact zero.
ZERO_GRADIENT_TOL = 1e-12
#: The gradient queries.
GRADIENT_QUERIES = ("grad", "pinn_grad", "pinn2_grad")
#: Part of every cache key of this oracle's answers (``oracle_cache``): bump it by hand
#: whenever a change here changes the answers or their error estimates.
ORACLE_VERSION = "2"

NEWTON = "JAX float64 damped Newton with dense per-sample Jacobians (vmap/jacfwd)"
IMPLICIT = "custom_jvp rule (I - J) dz = f_theta dtheta + f_x dx, dense per-sample solves"

Theta = dict[str, Any]  # parameter name -> JAX array
FixedPoint = Callable[[Theta, Any], Any]  # z*(theta, x), differentiable to any order


def oracle(problem, query: str) -> OracleAnswer:
    """The JAX oracle's float64 answer to ``query`` on the torch ``problem``, with an error
    estimate per value; the same keys and shapes as the torch oracle's answer."""
    check_query_name(query)
    for reason in (problem.backend_unavailable_reason("jax"), problem.unsupported_reason(query)):
        if reason is not None:
            raise UnsupportedQueryError(reason)
    jp = problem.to("cpu", torch.float64).for_backend("jax")
    z_checked = newton_fixed_point(jp, jp.theta, jp.x, jp.z_init())
    check_attracting(jp, state_jacobians(jp, jp.theta, jp.x, z_checked))
    return ANSWERS[query](jp, implicit_fixed_point(jp, z_checked), z_checked)


# ------------------------------------------------------------- dense partials of f
def per_sample_layer(jp) -> Callable[[Theta, Any, Any], Any]:
    """f on one sample (x: (n,), z: (m,)): samples are independent, so vmap gives the batch."""

    def f_one(theta, x_one, z_one):
        return jp.f(theta, x_one[None], z_one[None])[0]

    return f_one


def state_jacobians(jp, theta: Theta, x, z):
    """J = df/dz per sample, (batch, m, m), by forward mode (m is small)."""
    jax = import_jax()
    return jax.vmap(jax.jacfwd(per_sample_layer(jp), argnums=2), in_axes=(None, 0, 0))(theta, x, z)


def identity_minus(jacobians):
    jnp = import_jax().numpy
    return jnp.eye(jacobians.shape[-1], dtype=jacobians.dtype) - jacobians


def solve_per_sample(matrices, vectors):
    """x_b = A_b^{-1} v_b for (batch, m, m) and (batch, m): one dense LU solve per sample.

    The trailing unit axis makes ``jnp.linalg.solve`` read each v_b as a column (a bare
    (batch, m) right-hand side would be taken for one (batch, m) matrix). Linear in v, and
    JAX transposes it: reverse mode through the rule needs nothing more.
    """
    return import_jax().numpy.linalg.solve(matrices, vectors[..., None])[..., 0]


# ------------------------------------------------------------------ fixed point
def newton_fixed_point(jp, theta: Theta, x, z_start):
    """z* = f(theta, x, z*) by damped Newton from ``z_start``, on concrete arrays.

    The arithmetic (f, J, the solves) is JAX's; the bookkeeping (norms, which samples have
    converged, which step length to keep) is NumPy's, on the host: run op by op, each JAX
    operation is compiled on first use, and these would only add to that bill. Raises
    OracleError when Newton does not converge: no fixed point, a singular ``I - J``, or a
    layer that is not contractive.
    """
    jnp = import_jax().numpy
    z = np.array(z_start, dtype=np.float64)
    residual = host_residual(jp, theta, x, z)
    for _ in range(NEWTON_MAX_ITER):
        done = converged_samples(z, residual)
        if done.all():
            return jnp.asarray(z)
        system = identity_minus(state_jacobians(jp, theta, x, jnp.asarray(z)))
        step = np.asarray(solve_per_sample(system, jnp.asarray(residual)))
        z, residual = damped_step(jp, theta, x, z, residual, step, done)
    worst = float(np.linalg.norm(residual, axis=1).max())
    raise OracleError(
        f"{jp!r}: JAX Newton did not reach |f(z) - z| <= {NEWTON_TOL:g} |z| in {NEWTON_MAX_ITER} "
        f"iterations (worst sample residual {worst:.3g}); the layer may have no fixed point or "
        "not be contractive"
    )


def host_residual(jp, theta: Theta, x, z: np.ndarray) -> np.ndarray:
    """f(theta, x, z) - z, evaluated by JAX, returned as a host array."""
    return np.asarray(jp.f(theta, x, import_jax().numpy.asarray(z))) - z


def converged_samples(z: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Per sample: the residual within NEWTON_TOL of |z_b|, or of the batch's root-mean-square
    |z| for a sample whose z* is near zero (where a purely relative test cannot be met)."""
    sizes = np.linalg.norm(z, axis=1)
    scale = np.maximum(sizes, np.sqrt(np.mean(sizes**2)))
    norms = np.linalg.norm(residual, axis=1)
    return np.isfinite(norms) & (norms <= NEWTON_TOL * scale)


def damped_step(jp, theta: Theta, x, z, residual, step, done):
    """Move each unconverged sample along its Newton step by the longest of 1, 1/2, 1/4, ...
    that lowers its residual; a sample no length helps stays put (and Newton then fails).

    Samples are independent, so one batched evaluation of f tries every sample's length.
    """
    norms = np.linalg.norm(residual, axis=1)
    length = np.ones(z.shape[0])
    settled = done.copy()
    z, residual = z.copy(), residual.copy()
    for _ in range(MAX_HALVINGS):
        trial = z + length[:, None] * step
        trial_residual = host_residual(jp, theta, x, trial)
        trial_norms = np.linalg.norm(trial_residual, axis=1)
        better = ~settled & np.isfinite(trial_norms) & (trial_norms < norms)
        z[better], residual[better] = trial[better], trial_residual[better]
        settled |= better
        if settled.all():
            break
        length[~settled] /= 2
    return z, residual


def check_attracting(jp, jacobians) -> None:
    """Raise OracleError unless the spectral radius of J is below 1 in every sample.

    Newton converges to repelling fixed points too; the DEQ's iteration would not find one,
    so no strategy's answer could be judged against it.
    """
    radius = float(np.abs(np.linalg.eigvals(np.asarray(jacobians))).max())
    if not radius < 1:
        raise OracleError(
            f"{jp!r}: the fixed point JAX Newton found is not attracting (spectral radius of df/dz "
            f"= {radius:.4g} >= 1): the layer is not contractive there"
        )


# ---------------------------------------------------------- implicit derivatives
def implicit_fixed_point(jp, z_start) -> FixedPoint:
    """z*(theta, x) as a custom_jvp function, its Newton solves warm-started from ``z_start``.

    The rule calls the function itself for the point its partials are taken at, so a
    transform of the rule (a second jvp, a vjp) differentiates z* through the rule again.
    """
    jax = import_jax()

    @jax.custom_jvp
    def fixed_point(theta, x):
        return newton_fixed_point(jp, theta, x, z_start)

    def fixed_point_jvp(primals, tangents):
        theta, x = primals
        z = fixed_point(theta, x)
        forcing = layer_forcing(jp, theta, x, z, *tangents)
        return z, solve_per_sample(identity_minus(state_jacobians(jp, theta, x, z)), forcing)

    fixed_point.defjvp(fixed_point_jvp, symbolic_zeros=True)
    return fixed_point


def layer_forcing(jp, theta: Theta, x, z, dtheta: dict[str, Any], dx):
    """f_theta[dtheta] + f_x[dx] at fixed z: a jvp of f in the inputs that move.

    A tangent that is a symbolic zero (a parameter or the input that this transform does not
    differentiate: theta under ``jvp``, x under ``grad``) is left out of the jvp rather than
    pushed through f as an array of zeros, at every order.
    """
    jax = import_jax()
    moving = {name: tangent for name, tangent in dtheta.items() if not is_symbolic_zero(tangent)}
    x_moves = not is_symbolic_zero(dx)

    def f_of_moving(moving_theta, moving_x):
        return jp.f({**theta, **moving_theta}, moving_x if x_moves else x, z)

    primals = ({name: theta[name] for name in moving}, x if x_moves else ())
    _, forcing = jax.jvp(f_of_moving, primals, (moving, dx if x_moves else ()))
    return forcing


def is_symbolic_zero(tangent) -> bool:
    return type(tangent) is import_jax().custom_derivatives.SymbolicZero


def derivatives_along(z_star: FixedPoint, theta: Theta, x, e, order: int):
    """(z*, dz*/dtau, d2z*/dtau2) at tau = 0 on the line x + tau e (each sample's input moved
    along e); the derivatives above ``order`` are None. Nested forward mode."""
    jax = import_jax()
    jnp = jax.numpy
    zero, one = jnp.zeros((), dtype=x.dtype), jnp.ones((), dtype=x.dtype)

    if order == 0:
        return z_star(theta, x), None, None

    def path(tau):
        return z_star(theta, x + tau * e)

    if order == 1:
        z, v = jax.jvp(path, (zero,), (one,))
        return z, v, None
    (z, v), (_, w) = jax.jvp(lambda tau: jax.jvp(path, (tau,), (one,)), (zero,), (one,))
    return z, v, w


def named_partial(z_star: FixedPoint, theta: Theta, x, directions: list):
    """D_{e_1} .. D_{e_k} z*(theta, x), (batch, m): nested forward mode, one direction a level,
    every sample's input moved along it."""
    jax = import_jax()
    if not directions:
        return z_star(theta, x)
    e, rest = directions[0], directions[1:]

    def inner(x_):
        return named_partial(z_star, theta, x_, rest)

    return jax.jvp(inner, (x,), (jax.numpy.broadcast_to(e, x.shape),))[1]


def input_hessian(z_star: FixedPoint, theta: Theta, x):
    """d2z*_b/dx_b^2 per sample, (batch, m, n, n), by polarization of line curvatures.

    With q(u) = d2/dtau2 z*(x + tau u) (the nested jvp of ``jvp2``), H_kk = q(e_k) and
    H_kl = (q(e_k + e_l) - q(e_k) - q(e_l)) / 2: n (n + 1) / 2 nested jvps of one shape.
    ``jax.hessian`` gives the same numbers, but run op by op it compiles a hundred new
    operations (a vmapped reverse pass through the rule) for what these reuse from ``jvp2``.
    """
    batch, n = x.shape
    unit = np.eye(n)

    def curvature(u):
        return np.asarray(derivatives_along(z_star, theta, x, import_jax().numpy.asarray(u), 2)[2])

    diagonal = [curvature(unit[k]) for k in range(n)]
    hessian = np.zeros((batch, diagonal[0].shape[1], n, n))
    for k in range(n):
        hessian[..., k, k] = diagonal[k]
        for l in range(k + 1, n):
            mixed = (curvature(unit[k] + unit[l]) - diagonal[k] - diagonal[l]) / 2
            hessian[..., k, l] = hessian[..., l, k] = mixed
    return hessian


# ----------------------------------------------------------------- query losses
def query_loss(jp, z_star: FixedPoint, query: str) -> Callable[[Theta], Any]:
    """theta -> the scalar loss a gradient query differentiates, on z* and its partials."""
    if query == "grad":
        return lambda theta: jp.data_loss(theta, jp.x, z_star(theta, jp.x))
    physics_loss, partials = jp.physics_query(query)

    def loss(theta):
        d = {
            name: named_partial(z_star, theta, jp.x, [jp.directions[direction] for direction in index])
            for name, index in partials.items()
        }
        return physics_loss(theta, jp.x, z_star(theta, jp.x), d)

    return loss


def snap_rounding_noise(gradient: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A parameter's gradient at most ZERO_GRADIENT_TOL of the whole gradient's norm, as exact zero.

    A gradient zero by structure (planted's A and D) comes out of float64 arithmetic as
    ~1e-16 of the others; against that every answer would show a huge relative error, against
    exact zero ``relative_error`` measures the absolute error, which can be checked.
    """
    total = math.sqrt(sum(float(np.sum(value**2)) for value in gradient.values()))
    return {
        name: np.zeros_like(value) if np.linalg.norm(value) <= ZERO_GRADIENT_TOL * total else value
        for name, value in gradient.items()
    }


# ----------------------------------------------------------- error estimation
def richardson_derivative(function: Callable[[float], Any], step: float) -> np.ndarray:
    """d/ds function(s) at 0: central differences at h and h/2, Richardson-extrapolated (error
    O(h^4)); the differencing on the host."""

    def central(h):
        return (np.asarray(function(h)) - np.asarray(function(-h))) / (2 * h)

    return (4 * central(step / 2) - central(step)) / 3


def input_step(jp) -> float:
    return FD_STEP * max(1.0, float(abs(np.asarray(jp.x)).max()))


def relative(value, reference) -> float:
    return relative_error(to_torch(value), to_torch(reference))


def estimate_forward_error(jp, z) -> dict[str, float]:
    """The relative size of one more Newton correction, for z* and the output."""
    theta, x = jp.theta, jp.x
    system = identity_minus(state_jacobians(jp, theta, x, z))
    correction = solve_per_sample(system, host_residual(jp, theta, x, np.asarray(z)))
    corrected = import_jax().numpy.asarray(np.asarray(z) + np.asarray(correction))
    return {
        "z_star": relative(z, corrected),
        "output": relative(jp.output(theta, z), jp.output(theta, corrected)),
    }


def estimate_jvp_error(jp, z_star: FixedPoint, e, v) -> float:
    """v against differences of z*(x + s e): Newton solves only, no rule."""
    difference = richardson_derivative(lambda s: z_star(jp.theta, jp.x + s * e), input_step(jp))
    return relative(v, difference)


def estimate_jvp2_error(jp, z_star: FixedPoint, e, w) -> float:
    """w = d2z*[e, e] against differences of the first-order rule's jvp along e."""
    return estimate_bilinear_error(jp, z_star, e, e, w)


def estimate_hessian_error(jp, z_star: FixedPoint, hessian) -> float:
    """The Hessian on two random input directions, H[u, r], against differences along r of
    the first-order rule's jvp along u: every entry H_kl enters, with weight u_k r_l."""
    u, r = (random_direction(label, (jp.n,)) for label in ("hessian u", "hessian r"))
    return estimate_bilinear_error(jp, z_star, u, r, np.einsum("bikl,k,l->bi", hessian, u, r))


def estimate_bilinear_error(jp, z_star: FixedPoint, u, r, value) -> float:
    """value = d2z*[u, r], (batch, m), against Richardson differences along r of the jvp along u
    (the next-lower quantity, each point a fresh Newton solve and a first-order jvp)."""

    def slope(s):
        return derivatives_along(z_star, jp.theta, jp.x + s * r, u, 1)[1]

    return relative(value, richardson_derivative(slope, input_step(jp)))


def estimate_gradient_error(loss: Callable[[Theta], Any], theta: Theta, name: str, gradient) -> float:
    """<gradient, delta> against Richardson differences of the loss along a random delta in
    one parameter, each point a fresh Newton solve (and the forward-mode v, w the loss uses).

    A random direction sees a 1/sqrt(d) share of an error spread over d entries, so the
    discrepancy is scaled by sqrt(d); it is relative to |gradient| |delta|, or to |delta| alone
    where the gradient is exactly zero (absolute, as ``relative_error`` reports there).
    """
    parameter = theta[name]
    # Each entry moves in proportion to the parameter's typical entry: a parameter of small
    # entries is not pushed far away.
    typical = max(float(np.sqrt(np.mean(np.asarray(parameter) ** 2))), 1e-3)
    delta = typical * random_direction(name, parameter.shape)
    difference = richardson_derivative(lambda s: float(loss({**theta, name: parameter + s * delta})), FD_STEP)
    gradient_norm = float(np.linalg.norm(gradient))
    scale = float(np.linalg.norm(delta)) * (gradient_norm if gradient_norm > 0 else 1.0)
    return abs(float(np.sum(gradient * delta)) - difference) / scale * math.sqrt(parameter.size)


def random_direction(label: str, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal entries seeded by ``label``: the same direction on every run."""
    return np.random.default_rng(zlib.crc32(label.encode())).standard_normal(shape)


# ---------------------------------------------------------------------- answers
def answer_forward(jp, z_star: FixedPoint, z) -> OracleAnswer:
    return OracleAnswer(
        "forward",
        {"z_star": to_torch(z), "output": to_torch(jp.output(jp.theta, z))},
        estimate_forward_error(jp, z),
        f"{NEWTON}; error estimate: size of one more Newton correction",
    )


def answer_jvp(jp, z_star: FixedPoint, z) -> OracleAnswer:
    e = jp.direction("jvp")
    _, v, _ = derivatives_along(z_star, jp.theta, jp.x, e, 1)
    return OracleAnswer(
        "jvp",
        {"dz_dt": to_torch(v)},
        {"dz_dt": estimate_jvp_error(jp, z_star, e, v)},
        f"{NEWTON}; jax.jvp through the {IMPLICIT}; error estimate: Richardson differences of z*",
    )


def answer_jvp2(jp, z_star: FixedPoint, z) -> OracleAnswer:
    e = jp.direction("jvp2")
    _, _, w = derivatives_along(z_star, jp.theta, jp.x, e, 2)
    return OracleAnswer(
        "jvp2",
        {"d2z_dt2": to_torch(w)},
        {"d2z_dt2": estimate_jvp2_error(jp, z_star, e, w)},
        f"{NEWTON}; nested jax.jvp through the {IMPLICIT}; error estimate: Richardson differences of the jvp",
    )


def answer_hessian(jp, z_star: FixedPoint, z) -> OracleAnswer:
    hessian = input_hessian(z_star, jp.theta, jp.x)
    return OracleAnswer(
        "hessian",
        {"d2z_dx2": to_torch(hessian)},
        {"d2z_dx2": estimate_hessian_error(jp, z_star, hessian)},
        f"{NEWTON}; nested jax.jvp through the {IMPLICIT}, polarized; error estimate: "
        "Richardson differences of the jvp, on random directions",
    )


def gradient_answerer(query: str) -> Callable[[Any, FixedPoint, Any], OracleAnswer]:
    def answer(jp, z_star: FixedPoint, z) -> OracleAnswer:
        loss = query_loss(jp, z_star, query)
        raw = import_jax().grad(loss)(jp.theta)
        gradient = snap_rounding_noise({name: np.asarray(value) for name, value in raw.items()})
        return OracleAnswer(
            query,
            {name: to_torch(value) for name, value in gradient.items()},
            {name: estimate_gradient_error(loss, jp.theta, name, value) for name, value in gradient.items()},
            f"{NEWTON}; jax.grad through the {IMPLICIT}; error estimate: Richardson differences "
            "of the loss along a random direction",
        )

    return answer


ANSWERS: dict[str, Callable[[Any, FixedPoint, Any], OracleAnswer]] = {
    "forward": answer_forward,
    "jvp": answer_jvp,
    "jvp2": answer_jvp2,
    "hessian": answer_hessian,
    **{query: gradient_answerer(query) for query in GRADIENT_QUERIES},
}
