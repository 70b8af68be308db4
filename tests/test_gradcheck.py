"""gradcheck and gradgradcheck through `analytic`'s differentiable layer, on small instances.

The layer's backward is an implicit solve whose own backward is again a solve; torch's
checks compare its first and second derivatives with finite differences.
"""

import pytest
import torch
from helpers import TIGHT

import deqbench

SMALL = {"tanh": {"m": 4, "n": 2, "batch": 2}, "vanderpol": {"m": 4, "batch": 2}}


def layer_function(name, direct=True):
    problem = deqbench.get_problem(name, "quick", **SMALL[name])
    layer = deqbench.get_strategy("analytic", **TIGHT).layer(problem, direct=direct)
    names = list(problem.theta)

    def z_star(x, *theta_values):
        return layer(dict(zip(names, theta_values, strict=True)), x)

    inputs = (problem.x, *problem.theta.values())
    return problem, z_star, tuple(t.detach().clone().requires_grad_(True) for t in inputs)


#: The layer's backward systems solved directly (LU of I - J: the default on these small
#: states) and iterated.
BACKWARDS = pytest.mark.parametrize("direct", [True, False], ids=["direct", "iterated"])


@BACKWARDS
@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradcheck(name, direct):
    _, z_star, inputs = layer_function(name, direct)
    assert torch.autograd.gradcheck(z_star, inputs, atol=1e-7, rtol=1e-6)


@BACKWARDS
@pytest.mark.parametrize("name", sorted(SMALL))
def test_gradgradcheck(name, direct):
    _, z_star, inputs = layer_function(name, direct)
    assert torch.autograd.gradgradcheck(z_star, inputs, atol=1e-7, rtol=1e-6)


def test_layer_agrees_with_the_matrix_free_queries():
    """Two code paths of `analytic`: autograd through the layer and the Taylor-map queries."""
    problem, z_star, (x, *theta) = layer_function("tanh")
    strategy = deqbench.get_strategy("analytic", **TIGHT)
    e = problem.directions["t"]  # tanh's physics loss is on z_t
    offsets = torch.zeros(problem.batch, dtype=torch.float64, requires_grad=True)
    z = z_star(x + offsets[:, None] * e, *theta)
    dz = torch.stack(
        [torch.autograd.grad(z[:, j].sum(), offsets, create_graph=True)[0] for j in range(problem.m)], dim=1
    )
    loss = problem.physics_loss(dict(zip(problem.theta, theta, strict=True)), x, z, {"z_t": dz})
    via_layer = torch.autograd.grad(loss, theta)
    via_queries = strategy.run("pinn_grad", problem).values
    for name, value in zip(problem.theta, via_layer, strict=True):
        assert torch.allclose(value, via_queries[name], rtol=1e-9, atol=1e-12), name
