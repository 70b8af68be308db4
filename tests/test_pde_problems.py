"""The PDE families: residuals of the reference, boundary terms, masks, contraction.

The reference partials are taken by torch autograd on each family's ``solution`` (a closed
form, or Burgers' Cole-Hopf quadrature), never by a strategy: these checks hold whatever
the strategies do. (Every strategy x query on these problems is verified against the
oracles by `tests/test_verification.py`; torch and JAX giving the same values by
`tests/test_backends.py`.)
"""

import pytest
import torch

import deqbench
from deqbench.problems.burgers1d import cole_hopf

FAMILIES = ["heat1d", "wave1d", "poisson2d", "burgers1d", "mongeampere2d"]
#: How near zero (r, r_g) are on the reference: rounding for the closed forms; for Burgers,
#: the quadrature's accuracy (its third derivatives reach 1e6 at the shock).
TOLERANCE = {"burgers1d": (1e-12, 1e-10)}
CLOSED_FORM_TOLERANCE = (1e-12, 1e-12)


def autograd_partials(function, points, specs, coordinates):
    """(u, {name: partial}) of a pointwise function u(points) (batch, 1), each partial along
    the coordinates its multi-index names, by nested torch autograd (samples independent)."""
    points = points.clone().requires_grad_(True)
    u = function(points)
    partials = {}
    for name, spec in specs.items():
        value = u
        for coordinate in spec:
            (gradient,) = torch.autograd.grad(value.sum(), points, create_graph=True)
            value = gradient[:, coordinates.index(coordinate)][:, None]
        partials[name] = value.detach()
    return u.detach(), partials


def all_partials(problem):
    return {**problem.physics_partials, **problem.physics2_partials}


def interior_points(problem):
    return problem.x[problem.interior_mask[:, 0] == 1]


def residuals_on(problem, function, points):
    """(r, r_g) of a candidate solution at points, (batch, 1) each."""
    u, du = autograd_partials(function, points, all_partials(problem), problem.coordinates)
    return problem.residual(points, u, du), problem.gpinn_residual(points, u, du)


def perturbed(problem):
    """The reference plus 0.1 (p0 p1)^2 + 0.1 p0^3: no longer a solution of any family's PDE."""
    return lambda p: problem.solution(p) + 0.1 * (p[:, 0:1] * p[:, 1:2]) ** 2 + 0.1 * p[:, 0:1] ** 3


def worst(values):
    return float(values.abs().max())


@pytest.fixture(scope="module", params=FAMILIES)
def problem(request):
    return deqbench.get_problem(request.param, "default")


# ------------------------------------------------------------------ residuals
def test_the_residual_and_its_gpinn_derivative_vanish_on_the_reference(problem):
    points = interior_points(problem)
    assert len(points) >= problem.batch // 2
    r, r_g = residuals_on(problem, problem.solution, points)
    assert r.shape == r_g.shape == (len(points), 1)
    tolerance = TOLERANCE.get(problem.name, CLOSED_FORM_TOLERANCE)
    assert worst(r) < tolerance[0], worst(r)
    assert worst(r_g) < tolerance[1], worst(r_g)


def test_a_perturbed_solution_leaves_a_clear_residual(problem):
    r, r_g = residuals_on(problem, perturbed(problem), interior_points(problem))
    assert worst(r) > 1e-2 and worst(r_g) > 1e-2, (worst(r), worst(r_g))


# ------------------------------------------------------- faces and masks
def test_the_boundary_and_initial_terms_vanish_on_the_reference_and_not_off_it(problem):
    assert float(problem.boundary_loss(problem.solution(problem.x))) < 1e-28
    assert float(problem.boundary_loss(perturbed(problem)(problem.x))) > 1e-4


def test_the_wave_starts_at_rest_on_the_reference():
    problem = deqbench.get_problem("wave1d", "default")
    _, du = autograd_partials(problem.solution, problem.x, {"t": "t"}, problem.coordinates)
    assert float(problem.initial_velocity_loss(du)) < 1e-28
    _, moving = autograd_partials(perturbed(problem), problem.x, {"t": "t"}, problem.coordinates)
    moving["t"] = moving["t"] + 0.1  # a string thrown with a uniform velocity
    assert float(problem.initial_velocity_loss(moving)) > 1e-3
    assert float(problem.initial_mask.sum()) >= 1
    assert bool((problem.x[problem.initial_mask[:, 0] == 1, 0] == 0).all())


def test_the_face_points_lie_on_the_faces_and_the_masks_split_the_batch(problem):
    edge = problem.edge_mask[:, 0] == 1
    assert torch.equal(problem.edge_mask + problem.interior_mask, torch.ones_like(problem.edge_mask))
    assert int(edge.sum()) == max(len(problem.faces), round(problem.batch * problem.edge_share))
    on_some_face = torch.zeros(problem.batch, dtype=torch.bool)
    for coordinate, value in problem.faces:
        on_face = problem.x[:, problem.coordinates.index(coordinate)] == value
        assert bool((on_face & edge).any()), (coordinate, value)
        on_some_face |= on_face
    assert bool(on_some_face[edge].all()) and not bool(on_some_face[~edge].any())
    for i, (low, high) in enumerate(problem.domain):
        assert float(problem.x[:, i].min()) >= low and float(problem.x[:, i].max()) <= high


def test_the_losses_vanish_when_the_head_reads_the_reference(problem):
    """z and its partials chosen so that C z + c and C dz are the reference's: every physics
    loss is zero; shift one partial and it is not. Checks the head, masks and wiring."""
    theta, x = problem.theta, problem.x
    u, du = autograd_partials(problem.solution, x, all_partials(problem), problem.coordinates)
    # the residual is not asked of the face points (Burgers' u_t is infinite at t = 0)
    du = {name: torch.where(problem.interior_mask == 1, partial, 0.0) for name, partial in du.items()}
    C_pinv = torch.linalg.pinv(theta["C"])  # (m, 1): C @ C_pinv = 1 since C is one row
    z = (u - theta["c"]) @ C_pinv.T
    d = {name: partial @ C_pinv.T for name, partial in du.items()}
    tolerance = TOLERANCE.get(problem.name, CLOSED_FORM_TOLERANCE)[1] ** 2
    assert float(problem.data_loss(theta, x, z)) < 1e-28
    losses = {"physics": problem.physics_loss, "physics2": problem.physics2_loss}
    partials = {"physics": problem.physics_partials, "physics2": problem.physics2_partials}
    for kind, loss in losses.items():
        own = {name: d[name] for name in partials[kind]}
        assert float(loss(theta, x, z, own)) < tolerance, kind
        first = next(iter(own))
        shifted = {**own, first: own[first] + 0.1 * C_pinv.T}
        assert float(loss(theta, x, z, shifted)) > 1e-4, kind


# ------------------------------------------------------- the layer
@pytest.mark.parametrize("preset", ["quick", "default", "large"])
@pytest.mark.parametrize("name", FAMILIES)
def test_the_layer_is_a_contraction_at_every_preset(name, preset):
    problem = deqbench.get_problem(name, preset)
    theta, x = problem.theta, problem.x
    assert float(torch.linalg.matrix_norm(theta["W"], ord=2)) < 1
    generator = torch.Generator().manual_seed(5)
    for i in (0, problem.batch - 1):  # a face point and an interior one
        for _ in range(2):
            z = torch.randn(1, problem.m, generator=generator, dtype=torch.float64)
            jacobian = torch.func.jacrev(lambda z, i=i: problem.f(theta, x[i : i + 1], z))(z)
            jacobian = jacobian.reshape(problem.m, problem.m)
            assert float(torch.linalg.matrix_norm(jacobian, ord=2)) < 1


def test_the_quick_presets_stay_small():
    for name in FAMILIES:
        problem = deqbench.get_problem(name, "quick")
        assert problem.m == 8 and problem.batch <= 16 and problem.n == 2


# ------------------------------------------------------- Burgers' reference
def test_the_cole_hopf_reference_starts_at_the_initial_condition():
    x = torch.linspace(-1, 1, 201, dtype=torch.float64)
    initial = -torch.sin(torch.pi * x)
    at_zero = cole_hopf(torch.zeros_like(x), x, nodes=160)
    assert worst(at_zero - initial) < 1e-15
    # u(t) = u0 + t (nu u0'' - u0 u0') + O(t^2): the gap shrinks tenfold with t
    gaps = [worst(cole_hopf(torch.full_like(x, t), x, nodes=160) - initial) for t in (1e-3, 1e-4, 1e-5)]
    assert gaps[0] < 2e-3 and 8 < gaps[0] / gaps[1] < 12 and 8 < gaps[1] / gaps[2] < 12, gaps


def test_the_cole_hopf_reference_converges_as_the_nodes_double():
    """On a grid over the whole box, the shock at x = 0 included."""
    t, x = torch.meshgrid(
        torch.linspace(0, 1, 41, dtype=torch.float64),
        torch.linspace(-1, 1, 201, dtype=torch.float64),
        indexing="ij",
    )
    values = {nodes: cole_hopf(t, x, nodes=nodes) for nodes in (40, 80, 160, 320)}
    changes = [worst(values[2 * n] - values[n]) for n in (40, 80, 160)]
    assert changes[0] > changes[1] > 0 and changes[2] < 1e-13, changes
    # the shock is there: at t = 1, u falls from 0.7 to -0.7 between x = -0.02 and 0.02
    assert float(values[160][-1, 98] - values[160][-1, 102]) > 1.4
