"""The fixed-point solvers on problems with known answers."""

import pytest
import torch

from deqbench import solvers
from deqbench.solvers import SOLVERS, anderson, mixing_weights, relative_regularization, solve


def linear_contraction(batch=5, d=7, rho=0.9, seed=0):
    generator = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, d, d, generator=generator, dtype=torch.float64)
    A = A * (rho / torch.linalg.matrix_norm(A, ord=2))[:, None, None]
    b = torch.randn(batch, d, generator=generator, dtype=torch.float64)
    exact = torch.linalg.solve(torch.eye(d, dtype=torch.float64) - A, b)
    return (lambda z: (A @ z[..., None])[..., 0] + b), b, exact


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_solver_reaches_the_dense_solution(solver):
    g, b, exact = linear_contraction()
    solution = solve(solver, g, torch.zeros_like(b), tol=1e-13, max_iter=2000, phase="forward")
    assert solution.stats.converged
    assert solution.stats.residual <= 1e-13
    assert torch.allclose(solution.z, exact, rtol=1e-11, atol=1e-12)


def test_anderson_is_faster_than_plain_iteration_on_a_slow_contraction():
    g, b, _ = linear_contraction(rho=0.98)
    plain = solve("fixed_point", g, torch.zeros_like(b), tol=1e-10, max_iter=5000, phase="forward")
    accelerated = solve("anderson", g, torch.zeros_like(b), tol=1e-10, max_iter=5000, phase="forward")
    assert plain.stats.converged and accelerated.stats.converged
    assert accelerated.stats.iterations < plain.stats.iterations / 3


def test_anderson_mixes_each_sample_on_its_own():
    """Solving a batch gives each sample what solving it alone gives (no coupling)."""
    g, b, _ = linear_contraction(batch=4)
    together = solve("anderson", g, torch.zeros_like(b), tol=0.0, max_iter=12, phase="forward").z
    for i in range(4):

        def g_alone(z, i=i):
            padded = torch.zeros_like(b)
            padded[i] = z[0]
            return g(padded)[i : i + 1]

        alone = solve("anderson", g_alone, torch.zeros_like(b[:1]), tol=0.0, max_iter=12, phase="forward").z
        assert torch.allclose(together[i], alone[0], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_zero_solution_counts_as_converged(solver):
    g = lambda z: 0.5 * z  # noqa: E731
    solution = solve(
        solver, g, torch.zeros(3, 4, dtype=torch.float64), tol=1e-12, max_iter=50, phase="backward"
    )
    assert solution.stats.converged and solution.stats.phase == "backward"
    assert torch.count_nonzero(solution.z) == 0


def test_a_sample_with_zero_rhs_does_not_spoil_the_batch():
    g, b, exact = linear_contraction(batch=3)
    b[1] = 0
    exact[1] = 0
    g_masked = lambda z: g(z) - g(torch.zeros_like(z)) + b  # noqa: E731
    solution = solve("anderson", g_masked, b.clone(), tol=1e-13, max_iter=500, phase="backward")
    assert solution.stats.converged
    assert torch.allclose(solution.z, exact, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_divergence_is_flagged_not_hidden(solver):
    g = lambda z: 2.0 * z + 1.0  # noqa: E731 - expanding map: plain iteration runs away
    solution = solve(
        solver, g, torch.zeros(2, 3, dtype=torch.float64), tol=1e-10, max_iter=30, phase="forward"
    )
    if solver == "fixed_point":
        assert not solution.stats.converged
    else:
        # Anderson solves affine maps exactly (it finds z = -1 of an expanding map too):
        # then the answer must be the true fixed point, not a silent wrong number.
        assert not solution.stats.converged or torch.allclose(
            solution.z, torch.full((2, 3), -1.0, dtype=torch.float64)
        )


def test_unknown_solver_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown solver 'newton'; known: fixed_point, anderson"):
        solve("newton", lambda z: z, torch.zeros(1, 1), tol=1e-3, max_iter=2, phase="forward")


# ------------------------------------------------- singular least squares in Anderson
@pytest.mark.parametrize(
    ("dtype", "regularization"),
    [(torch.float32, 1e-10), (torch.float64, 0.0)],  # float32: 1 + 1e-10 rounds to 1
    ids=["float32", "float64-unregularized"],
)
def test_anderson_survives_a_singular_history(dtype, regularization):
    """Every residual of ``z + 1`` is the same vector: the Gram matrix has rank one."""
    g = lambda z: z + 1.0  # noqa: E731 - no fixed point: never converges, never raises
    z0 = torch.zeros(3, 4, dtype=dtype)
    solution = anderson(g, z0, tol=1e-5, max_iter=20, regularization=regularization)
    assert torch.isfinite(solution.z).all()
    assert not solution.stats.converged and solution.stats.iterations == 20


def test_mixing_weights_fall_back_to_a_plain_step_where_singular():
    """A singular (or non-finite) system gives weight one on the newest image, per sample;
    the other samples keep their least-squares weights, and gradients stay finite."""
    gram = torch.stack([torch.ones(3, 3), torch.eye(3), torch.full((3, 3), torch.inf)]).double()
    gram.requires_grad_(True)
    alpha = mixing_weights(gram, regularization=0.0)[..., 0]
    expected = torch.tensor([[0, 0, 1], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]], dtype=torch.float64)
    assert torch.allclose(alpha, expected)
    (gradient,) = torch.autograd.grad((alpha * torch.arange(3.0)).sum(), gram)
    assert torch.isfinite(gradient[:2]).all()


def test_anderson_regularization_is_never_below_the_dtypes_resolution():
    assert relative_regularization(1e-10, torch.float64) == 1e-10  # float64: unchanged
    assert relative_regularization(1e-10, torch.float32) >= 10 * torch.finfo(torch.float32).eps
    one = torch.ones((), dtype=torch.float32)
    assert one + relative_regularization(0.0, torch.float32) > one  # not lost to rounding


def iterations_checking_every_step(g, z0, tol):
    z, k = z0, 0
    while True:
        k += 1
        gz = g(z)
        if solvers.relative_residual(gz, z) <= tol:
            return k
        z = gz


@pytest.mark.parametrize("rho", [0.3, 0.9, 0.98])
def test_fixed_point_checks_rarely_and_stops_within_a_third_more_steps(rho, monkeypatch):
    g, b, _ = linear_contraction(rho=rho)
    every_step = iterations_checking_every_step(g, torch.zeros_like(b), 1e-10)
    checks = []
    measure = solvers.relative_residual
    monkeypatch.setattr(solvers, "relative_residual", lambda gz, z: checks.append(1) or measure(gz, z))
    solution = solve("fixed_point", g, torch.zeros_like(b), tol=1e-10, max_iter=5000, phase="forward")
    assert solution.stats.converged
    assert every_step <= solution.stats.iterations <= every_step * 4 / 3 + 1
    assert len(checks) <= 0.8 * solution.stats.iterations, (len(checks), solution.stats.iterations)
