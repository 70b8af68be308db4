"""The oracle: an independent float64 answer to every query, with its own error estimate.

The oracle shares no code path with the strategies or with ``deqbench.solvers``: it uses
neither their solvers nor their jvp/vjp recurrences, only dense per-sample derivatives of
``f`` and dense linear algebra, in float64 on the CPU.

How it computes (docs/explanations/mathematics.md, written with dense matrices):

- **Fixed point.** A safeguarded Newton iteration with dense per-sample Jacobians
  ``J = df/dz``, to ``|f(z) - z| <= 1e-13 |z|``. The fixed point must be attracting
  (spectral radius of ``J`` below 1), or the DEQ's own iteration would not find it.
- **Input derivatives.** Local input coordinates ``s`` with ``x = x0 + P s`` (``P`` holds
  the directions a query names: ``e`` for jvp, the identity for the full Hessian, those of
  a physics loss's partials). From the dense Jacobian ``[f_s | J]`` and the dense Hessian
  ``H`` of ``f`` in ``y = (s, z)``, with ``u_k = (unit_k, z_s[:, k])`` how y moves along s_k
  and ``u_kl = (0, z_ss[:, k, l])``:

      (I - J) z_s = f_s
      (I - J) z_ss[k, l] = H[u_k, u_l]
      (I - J) z_sss[k, l, p] = T[u_k, u_l, u_p] + H[u_kl, u_p] + H[u_kp, u_l] + H[u_lp, u_k]

  the second line being ``f_xx[e,e] + 2 f_xz[e,v] + f_zz[v,v]`` with total derivatives, and
  ``T`` the third derivative of f, taken only along the moves (a dense k x k x k tensor per
  sample, by forward mode in k local coordinates). A named partial such as u_txx is then an
  entry of these tensors: no polarization, no nested tangents.
- **Parameter gradients.** ``z*`` is made differentiable in ``theta`` by one dense Newton step
  with a detached Jacobian, ``Z(theta) = z* + (I - J*)^{-1} (f(theta, x, z*) - z*)``: its value
  is ``z*`` and its first derivative the exact ``(I - J)^{-1} f_theta``. The tangents are then
  built from dense partials taken at ``Z(theta)`` with the graph kept, and plain autograd
  differentiates the loss. Only first derivatives of ``Z`` are ever used, so this is exact.
- **Error estimate.** Each value is cross-checked against central finite differences with
  Richardson extrapolation of the next-lower quantity, each evaluation a fresh Newton solve:
  ``jvp`` against differences of ``z*``, ``jvp2`` and ``hessian`` against differences of the
  dense first derivatives, gradients against differences of the scalar loss along a random
  direction. For ``forward`` the estimate is the size of one more Newton correction.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.func import jacfwd, jacrev, vmap

from deqbench.harness.oracle.accuracy import relative_error
from deqbench.problems.base import Problem, Theta
from deqbench.queries import UnsupportedQueryError, check_query_name

#: Newton stops when every sample's residual |f(z) - z| is this small relative to |z|.
NEWTON_TOL = 1e-13
NEWTON_MAX_ITER = 60
#: Central-difference step, relative to the scale of what is perturbed. With Richardson
#: extrapolation the truncation error is O(h^4) and the rounding error O(eps / h), so the
#: best step is near eps^(1/5) ~ 7e-4.
FD_STEP = 1e-3
#: A parameter's gradient this small relative to the whole gradient is rounding noise: no
#: float64 computation resolves it, so it is returned as exact zero (see ``snap_rounding_noise``).
ZERO_GRADIENT_TOL = 1e-12
#: The gradient queries.
GRADIENT_QUERIES = ("grad", "pinn_grad", "pinn2_grad")
#: The version of the oracle's method, part of every oracle cache key (``oracle_cache``).
#: Bump it by hand whenever a change here changes the oracle's answers or error estimates
#: (a tolerance, a step, a formula): every cached answer is then recomputed, never reused.
ORACLE_VERSION = "2"


class OracleError(RuntimeError):
    """The oracle cannot give a trustworthy answer (no attracting fixed point found)."""


@dataclass
class OracleAnswer:
    """The oracle's answer to one query, float64 on the CPU.

    ``error_estimate`` is relative, except for a value that is exactly zero, where it is
    absolute (the convention of ``relative_error``).
    """

    query: str
    values: dict[str, torch.Tensor]  # same keys and shapes as the strategies' answers
    error_estimate: dict[str, float]  # the oracle's own estimate of each value's relative error
    method: str  # a short description of how it was computed
    cached: bool = False  # read from the oracle cache rather than computed now


def oracle(problem: Problem, query: str) -> OracleAnswer:
    """The oracle's float64 answer to ``query`` on ``problem``, with an error estimate per value."""
    check_query_name(query)
    reason = problem.unsupported_reason(query)
    if reason is not None:
        raise UnsupportedQueryError(reason)
    problem = problem.to("cpu", torch.float64)
    with single_threaded():
        z_star = newton_fixed_point(problem, problem.theta, problem.x, problem.z_init())
        return ANSWERS[query](problem, z_star)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run on one intra-op thread, then restore the caller's setting.

    The oracle's tensors are small (per-sample m x m matrices): extra threads cost more in
    synchronisation than they save, several times over on a busy machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ------------------------------------------------------------- dense partials of f
def per_sample_layer(problem: Problem) -> Callable[[Theta, torch.Tensor, torch.Tensor], torch.Tensor]:
    """f on one sample (x: (n,), z: (m,)), for vmap: samples of a problem are independent."""

    def f_one(theta, x_one, z_one):
        return problem.f(theta, x_one[None], z_one[None])[0]

    return f_one


def state_jacobian(problem: Problem, theta: Theta, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """J = df/dz per sample, (batch, m, m)."""
    f_one = per_sample_layer(problem)
    return vmap(jacrev(f_one, argnums=2), in_dims=(None, 0, 0))(theta, x, z)


def local_partials(
    problem: Problem, theta: Theta, x: torch.Tensor, z: torch.Tensor, basis: torch.Tensor, order: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Dense partials of f in y = (s, z) with x = x0 + basis @ s, at s = 0.

    Returns the Jacobian (batch, m, k + m), whose first k columns are f_s and the rest J, and
    for order 2 the Hessian (batch, m, k + m, k + m). Differentiable in theta and z.
    """
    f_one = per_sample_layer(problem)
    k = basis.shape[1]

    def f_local(y, x_one):
        return f_one(theta, x_one + basis @ y[:k], y[k:])

    y = torch.cat([z.new_zeros(z.shape[0], k), z], dim=1)
    if order < 2:
        return vmap(jacrev(f_local))(y, x), None

    def jacobian_twice(y_one, x_one):  # the Jacobian as aux spares a second pass
        jacobian = jacrev(f_local)(y_one, x_one)
        return jacobian, jacobian

    hessian, jacobian = vmap(jacfwd(jacobian_twice, has_aux=True))(y, x)
    return jacobian, hessian


def identity_minus(jacobian: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(jacobian.shape[-1], dtype=jacobian.dtype, device=jacobian.device)
    return eye - jacobian


def input_derivatives(
    problem: Problem, theta: Theta, x: torch.Tensor, z: torch.Tensor, basis: torch.Tensor, order: int
) -> list[torch.Tensor]:
    """Total derivatives of z* in the local input coordinates, by dense solves with (I - J):
    [z_s (batch, m, k), z_ss (batch, m, k, k), z_sss (batch, m, k, k, k)] up to ``order``."""
    k = basis.shape[1]
    jacobian, hessian = local_partials(problem, theta, x, z, basis, min(order, 2))
    f_s, system = jacobian[..., :k], identity_minus(jacobian[..., k:])
    z_s = torch.linalg.solve(system, f_s)
    if order < 2:
        return [z_s]
    batch, m = z.shape
    # u_k = (unit_k, z_s[:, k]): how (s, z) move along input coordinate k.
    unit = torch.eye(k, dtype=z.dtype, device=z.device).expand(batch, k, k)
    moves = torch.cat([unit, z_s], dim=1)  # (batch, k + m, k)
    z_ss = solve_each(system, torch.einsum("biac,bak,bcl->bikl", hessian, moves, moves))
    if order < 3:
        return [z_s, z_ss]
    # u_kl = (0, z_ss[:, k, l]): the second-order moves (s is linear in itself).
    second_moves = torch.cat([z.new_zeros(batch, k, k, k), z_ss], dim=1)  # (batch, k + m, k, k)
    mixed = torch.einsum("biac,bakl,bcp->biklp", hessian, second_moves, moves)
    rhs = third_along_moves(problem, theta, x, z, basis, moves)
    rhs = rhs + mixed + mixed.permute(0, 1, 2, 4, 3) + mixed.permute(0, 1, 4, 3, 2)
    return [z_s, z_ss, solve_each(system, rhs)]


def solve_each(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """(I - J)^{-1} applied to every trailing entry of rhs (batch, m, ...), dense."""
    batch, m = rhs.shape[:2]
    return torch.linalg.solve(system, rhs.reshape(batch, m, -1)).reshape(rhs.shape)


def third_along_moves(
    problem: Problem, theta: Theta, x: torch.Tensor, z: torch.Tensor, basis: torch.Tensor, moves: torch.Tensor
) -> torch.Tensor:
    """T[u_k, u_l, u_p] per sample, (batch, m, k, k, k): the third derivative of f along the
    first-order moves, as the dense third derivative of c -> f(y + moves c) in k coordinates
    (forward mode three times; the full (k + m)^3 tensor is never formed)."""
    f_one = per_sample_layer(problem)
    k = basis.shape[1]

    def along_moves(c, x_one, z_one, moves_one):
        shift = moves_one @ c  # (k + m,)
        return f_one(theta, x_one + basis @ shift[:k], z_one + shift[k:])

    origin = z.new_zeros(k)
    third = jacfwd(jacfwd(jacfwd(along_moves)))
    return vmap(third, in_dims=(None, 0, 0, 0))(origin, x, z, moves)


def named_partials(
    problem: Problem, theta: Theta, x: torch.Tensor, z: torch.Tensor, partials: dict[str, tuple[str, ...]]
) -> dict[str, torch.Tensor]:
    """A physics loss's partials of z* by name, (batch, m) each: entries of the total
    derivatives in local coordinates along the directions the partials name."""
    names = sorted({direction for index in partials.values() for direction in index})
    basis = torch.stack([problem.directions[name] for name in names], dim=1)  # (n, k)
    derivatives = input_derivatives(problem, theta, x, z, basis, max(map(len, partials.values())))
    coordinate = {name: i for i, name in enumerate(names)}
    return {
        name: derivatives[len(index) - 1][(..., *(coordinate[d] for d in index))]
        for name, index in partials.items()
    }


def directional_derivatives(
    problem: Problem, theta: Theta, x: torch.Tensor, z: torch.Tensor, e: torch.Tensor, order: int
) -> list[torch.Tensor]:
    """[dz*/dtau, d2z*/dtau2, ...] (batch, m) each, along the input direction e, to ``order``."""
    derivatives = input_derivatives(problem, theta, x, z, e[:, None], order)
    return [d.reshape(z.shape) for d in derivatives]


# ------------------------------------------------------------------ fixed point
def newton_fixed_point(
    problem: Problem, theta: Theta, x: torch.Tensor, z_start: torch.Tensor, *, check: bool = True
) -> torch.Tensor:
    """z* = f(theta, x, z*) by Newton's method with dense per-sample Jacobians (no graph).

    Safeguarded per sample: a Newton step that does not reduce a sample's residual is
    replaced by a plain fixed-point step, which does reduce it on a contraction. With
    ``check``, the fixed point found must be attracting (see ``check_attracting``); the
    finite-difference solves near an already checked one skip that.
    """
    theta = {name: value.detach() for name, value in theta.items()}
    x = x.detach()
    with torch.no_grad():
        z = z_start.detach().clone()
        residual = problem.f(theta, x, z) - z
        for _ in range(NEWTON_MAX_ITER):
            if newton_converged(z, residual):
                if check:
                    check_attracting(problem, state_jacobian(problem, theta, x, z))
                return z
            system = identity_minus(state_jacobian(problem, theta, x, z))
            step, singular = torch.linalg.solve_ex(system, residual)  # singular: info != 0
            z_newton = z + step
            residual_newton = problem.f(theta, x, z_newton) - z_newton
            z_picard = z + residual
            residual_picard = problem.f(theta, x, z_picard) - z_picard
            newton_better = residual_newton.norm(dim=1) < residual.norm(dim=1)
            newton_better &= torch.isfinite(residual_newton).all(dim=1) & (singular == 0)
            keep = newton_better[:, None]
            z = torch.where(keep, z_newton, z_picard)
            residual = torch.where(keep, residual_newton, residual_picard)
    worst = float(residual.norm(dim=1).max())
    raise OracleError(
        f"{problem!r}: Newton did not reach |f(z) - z| <= {NEWTON_TOL:g} |z| in {NEWTON_MAX_ITER} "
        f"iterations (worst sample residual {worst:.3g}); the layer may have no fixed point or "
        "not be contractive"
    )


def newton_converged(z: torch.Tensor, residual: torch.Tensor) -> bool:
    """Every sample's residual within NEWTON_TOL of its own size (or of the batch's typical
    size, for a sample whose z* is near zero, where a relative test cannot be met)."""
    if not torch.isfinite(residual).all():
        return False
    typical = z.norm(dim=1).square().mean().sqrt()
    scale = torch.maximum(z.norm(dim=1), typical)
    return bool((residual.norm(dim=1) <= NEWTON_TOL * scale).all())


def check_attracting(problem: Problem, jacobian: torch.Tensor) -> None:
    """Raise unless the spectral radius of J is below 1 in every sample.

    Newton can converge to a repelling fixed point; the DEQ's own iteration would not find
    it, so no strategy's answer could be judged against it. A cheap certificate first
    (``certified_attracting``); the eigenvalues only when it does not settle the question.
    """
    if certified_attracting(jacobian):
        return
    radius = float(torch.linalg.eigvals(jacobian).abs().max())
    if not radius < 1:
        raise OracleError(
            f"{problem!r}: the fixed point Newton found is not attracting (spectral radius of df/dz "
            f"= {radius:.4g} >= 1): the layer is not contractive there"
        )


#: Squarings tried by ``certified_attracting`` before it leaves the question to eigvals.
CERTIFICATE_SQUARINGS = 5


def certified_attracting(jacobian: torch.Tensor) -> bool:
    """True when some power J^(2^j), j <= CERTIFICATE_SQUARINGS, has Frobenius norm below 1
    in every sample: then rho(J)^(2^j) = rho(J^(2^j)) <= |J^(2^j)|_F < 1, a proof that the
    spectral radius is below 1. False proves nothing (rho may still be below 1).

    Each squaring is one batched matmul, where the eigenvalues of a nonsymmetric matrix cost
    several times that and more: at m = 1024, batch 128, one thread, 158 s of eigvals
    against 7 s a squaring.
    """
    power = jacobian
    for _ in range(CERTIFICATE_SQUARINGS + 1):
        norms = torch.linalg.matrix_norm(power)  # Frobenius, per sample
        if not torch.isfinite(norms).all():
            return False
        if bool((norms < 1).all()):
            return True
        power = power @ power
    return False


def differentiable_fixed_point(
    problem: Problem, theta: Theta, x: torch.Tensor, z_star: torch.Tensor
) -> torch.Tensor:
    """Z(theta) = z* + (I - J*)^{-1} (f(theta, x, z*) - z*), J* detached.

    Its value is z* (to rounding) and its first derivative in theta is exactly
    (I - J)^{-1} f_theta, the implicit-function derivative of z*.
    """
    z_star = z_star.detach()
    with torch.no_grad():
        detached = {name: value.detach() for name, value in theta.items()}
        system = identity_minus(state_jacobian(problem, detached, x, z_star))
    return z_star + torch.linalg.solve(system, problem.f(theta, x, z_star) - z_star)


# ----------------------------------------------------------------- query losses
def query_loss(problem: Problem, query: str, theta: Theta, z_star: torch.Tensor) -> torch.Tensor:
    """The scalar loss a gradient query differentiates, as a function of theta."""
    return loss_at(problem, query, theta, differentiable_fixed_point(problem, theta, problem.x, z_star))


def loss_at(problem: Problem, query: str, theta: Theta, z: torch.Tensor) -> torch.Tensor:
    """A gradient query's loss on z and the partials of z* it needs, taken densely at z."""
    if query == "grad":
        return problem.data_loss(theta, problem.x, z)
    loss, partials = problem.physics_query(query)
    return loss(theta, problem.x, z, named_partials(problem, theta, problem.x, z, partials))


def loss_gradient(problem: Problem, query: str, z_star: torch.Tensor) -> dict[str, torch.Tensor]:
    """d loss / d theta for every parameter, by autograd through the dense formulas."""
    theta = {name: value.detach().requires_grad_(True) for name, value in problem.theta.items()}
    loss = query_loss(problem, query, theta, z_star)
    grads = torch.autograd.grad(loss, list(theta.values()), allow_unused=True, materialize_grads=True)
    return snap_rounding_noise({name: grad.detach() for name, grad in zip(theta, grads, strict=True)})


def snap_rounding_noise(gradient: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Set to exact zero a parameter's gradient that is rounding noise next to the whole.

    A gradient that is zero by structure (a parameter z* does not depend on) comes out of
    float64 arithmetic as ~1e-16 times the others. Against such a value every strategy would
    show a huge relative error; against exact zero ``relative_error`` measures the absolute
    error, which is what can be checked.
    """
    total = torch.sqrt(sum(value.square().sum() for value in gradient.values()))
    return {
        name: torch.zeros_like(value) if value.norm() <= ZERO_GRADIENT_TOL * total else value
        for name, value in gradient.items()
    }


# ----------------------------------------------------------- error estimation
def richardson_derivative(function: Callable[[float], torch.Tensor], step: float) -> torch.Tensor:
    """d/ds function(s) at 0: central differences at steps h and h/2, Richardson-extrapolated
    (error O(h^4))."""

    def central(h):
        return (function(h) - function(-h)) / (2 * h)

    return (4 * central(step / 2) - central(step)) / 3


def input_step(problem: Problem) -> float:
    return FD_STEP * max(1.0, float(problem.x.abs().max()))


def nearby_fixed_point(problem: Problem, theta: Theta, x: torch.Tensor, z_star: torch.Tensor) -> torch.Tensor:
    """z* at slightly moved inputs or parameters, warm-started from the checked z*."""
    return newton_fixed_point(problem, theta, x, z_star, check=False)


def loss_value(problem: Problem, query: str, theta: Theta, z: torch.Tensor) -> torch.Tensor:
    """The loss of a gradient query at a converged z, no graph: what the differences difference.

    The differences check the parameter gradient, which autograd takes through Z(theta) and
    the partials' dependence on theta; the partials themselves are checked elsewhere (closed
    forms, the JAX oracle, nested autograd in the tests).
    """
    with torch.no_grad():
        return loss_at(problem, query, theta, z)


def estimate_jvp_error(problem: Problem, z_star: torch.Tensor, e: torch.Tensor, v: torch.Tensor) -> float:
    """v against differences of z*(x + s e)."""
    differences = richardson_derivative(
        lambda s: nearby_fixed_point(problem, problem.theta, problem.x + s * e, z_star),
        input_step(problem),
    )
    return relative_error(differences, v)


def estimate_second_derivative_error(
    problem: Problem, z_star: torch.Tensor, basis: torch.Tensor, z_ss: torch.Tensor
) -> float:
    """z_ss (batch, m, k, k) against differences of the dense z_s along each basis column."""
    columns = []
    for coordinate in basis.T:

        def first_derivatives(s, coordinate=coordinate):
            shifted_x = problem.x + s * coordinate
            z = nearby_fixed_point(problem, problem.theta, shifted_x, z_star)
            with torch.no_grad():
                return input_derivatives(problem, problem.theta, shifted_x, z, basis, 1)[0]

        columns.append(richardson_derivative(first_derivatives, input_step(problem)))
    return relative_error(torch.stack(columns, dim=-1), z_ss)


def estimate_gradient_error(
    problem: Problem, query: str, z_star: torch.Tensor, name: str, gradient: torch.Tensor
) -> float:
    """<gradient, delta> against differences of the loss along a random delta in one parameter.

    A random direction sees only a 1/sqrt(d) share of an error vector in d entries, so the
    difference is scaled by sqrt(d) to estimate the error of the whole gradient. It is
    relative to |gradient| |delta|, or to |delta| alone where the gradient is zero (an
    absolute error, as ``relative_error`` reports against a zero reference).
    """
    parameter = problem.theta[name]
    generator = torch.Generator().manual_seed(sum(map(ord, name)))
    delta = torch.randn(parameter.shape, generator=generator, dtype=parameter.dtype)
    # Perturb each entry in proportion to the parameter's typical entry, so that a
    # parameter of small entries is not pushed far away.
    delta *= max(float(parameter.square().mean().sqrt()), 1e-3)

    def loss_along(s):
        theta = {**problem.theta, name: parameter + s * delta}
        return loss_value(problem, query, theta, nearby_fixed_point(problem, theta, problem.x, z_star))

    difference = richardson_derivative(loss_along, FD_STEP)
    predicted = (gradient * delta).sum()
    scale = delta.norm() * (gradient.norm() if gradient.norm() > 0 else 1.0)
    return float((predicted - difference).abs() / scale * math.sqrt(parameter.numel()))


def estimate_forward_error(problem: Problem, z_star: torch.Tensor) -> dict[str, float]:
    """The relative size of one more dense Newton correction, for z* and the output."""
    with torch.no_grad():
        theta, x = problem.theta, problem.x
        system = identity_minus(state_jacobian(problem, theta, x, z_star))
        corrected = z_star + torch.linalg.solve(system, problem.f(theta, x, z_star) - z_star)
        return {
            "z_star": relative_error(z_star, corrected),
            "output": relative_error(problem.output(theta, z_star), problem.output(theta, corrected)),
        }


# ---------------------------------------------------------------------- answers
NEWTON = "float64 Newton with dense per-sample Jacobians (vmap/jacrev)"


def answer_forward(problem: Problem, z_star: torch.Tensor) -> OracleAnswer:
    with torch.no_grad():
        output = problem.output(problem.theta, z_star)
    return OracleAnswer(
        "forward",
        {"z_star": z_star, "output": output},
        estimate_forward_error(problem, z_star),
        f"{NEWTON}; error estimate: size of one more Newton correction",
    )


def answer_jvp(problem: Problem, z_star: torch.Tensor) -> OracleAnswer:
    e = problem.direction("jvp")
    with torch.no_grad():
        (v,) = directional_derivatives(problem, problem.theta, problem.x, z_star, e, 1)
    return OracleAnswer(
        "jvp",
        {"dz_dt": v},
        {"dz_dt": estimate_jvp_error(problem, z_star, e, v)},
        f"{NEWTON}; dense solve (I - J) v = f_x e; error estimate: Richardson differences of z*",
    )


def answer_jvp2(problem: Problem, z_star: torch.Tensor) -> OracleAnswer:
    e = problem.direction("jvp2")
    with torch.no_grad():
        _, w = directional_derivatives(problem, problem.theta, problem.x, z_star, e, 2)
    return OracleAnswer(
        "jvp2",
        {"d2z_dt2": w},
        {"d2z_dt2": estimate_second_derivative_error(problem, z_star, e[:, None], w[..., None, None])},
        f"{NEWTON}; dense solves with the dense Hessian of f in (x, z); "
        "error estimate: Richardson differences of the dense jvp",
    )


def answer_hessian(problem: Problem, z_star: torch.Tensor) -> OracleAnswer:
    basis = torch.eye(problem.n, dtype=z_star.dtype)
    with torch.no_grad():
        _, z_xx = input_derivatives(problem, problem.theta, problem.x, z_star, basis, 2)
    return OracleAnswer(
        "hessian",
        {"d2z_dx2": z_xx},
        {"d2z_dx2": estimate_second_derivative_error(problem, z_star, basis, z_xx)},
        f"{NEWTON}; dense solves with the dense Hessian of f in (x, z); "
        "error estimate: Richardson differences of the dense input Jacobian",
    )


def gradient_answerer(query: str) -> Callable[[Problem, torch.Tensor], OracleAnswer]:
    def answer(problem: Problem, z_star: torch.Tensor) -> OracleAnswer:
        gradient = loss_gradient(problem, query, z_star)
        estimates = {
            name: estimate_gradient_error(problem, query, z_star, name, value)
            for name, value in gradient.items()
        }
        return OracleAnswer(
            query,
            gradient,
            estimates,
            f"{NEWTON}; autograd through dense solves at Z(theta) = z* + (I - J*)^-1 (f - z*); "
            "error estimate: Richardson differences of the loss along a random direction",
        )

    return answer


ANSWERS: dict[str, Callable[[Problem, torch.Tensor], OracleAnswer]] = {
    "forward": answer_forward,
    "jvp": answer_jvp,
    "jvp2": answer_jvp2,
    "hessian": answer_hessian,
    **{query: gradient_answerer(query) for query in GRADIENT_QUERIES},
}
