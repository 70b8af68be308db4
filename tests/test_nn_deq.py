"""deqbench.nn.DEQ, the public torch layer: exact at every order on a user's module.

Its answers on the zoo are test_verification's (the `nn-deq` strategy); here, what a user's
module brings: parameters found by named_parameters(), buffers, train/eval, batch shapes,
float32, warnings, memory, bad input, and derivatives checked against finite differences
(gradcheck, gradgradcheck) and against autograd through an unrolled iteration (third order,
and a PINN loss written the way a PINN user writes it), each with the backward systems
solved directly (the default on these small states) and iterated (``direct_backward=False``).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

import deqbench
from deqbench.nn import DEQ

M, N = 4, 2
TIGHT = {"tol": 1e-13, "backward_tol": 1e-13, "max_iter": 1000, "backward_max_iter": 1000}


class Cell(torch.nn.Module):
    """f(z, x) = tanh(W z + U x + b) * scale + 0.1 sin(z) (f_zz != 0): contractive, with a
    buffer and a mode-dependent term (eval halves the input drive)."""

    def __init__(self, dtype=torch.float64, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(0.4 * torch.randn(M, M, generator=generator, dtype=dtype) / M**0.5)
        self.U = torch.nn.Linear(N, M, dtype=dtype)
        torch.nn.init.normal_(self.U.weight, generator=generator)
        self.register_buffer("scale", torch.tensor(0.9, dtype=dtype))

    def forward(self, z, x):
        drive = self.U(x) if self.training else 0.5 * self.U(x)
        return self.scale * torch.tanh(z @ self.W.T + drive) + 0.1 * torch.sin(z)


def unrolled(cell, x, steps=200):
    """z* by plain iteration recorded by autograd: a reference that shares nothing with the layer."""
    z = torch.zeros(*x.shape[:-1], M, dtype=x.dtype, device=x.device)
    for _ in range(steps):
        z = cell(z, x)
    return z


def inputs(batch=3, dtype=torch.float64):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch, N, generator=generator, dtype=dtype, requires_grad=True)


def test_parameters_are_the_modules():
    cell = Cell()
    deq = DEQ(cell, M)
    assert dict(deq.named_parameters()) == {f"f.{k}": v for k, v in cell.named_parameters()}
    assert "f.scale" in dict(deq.named_buffers())


BACKWARDS = pytest.mark.parametrize("direct", [True, False], ids=["direct", "iterated"])


@BACKWARDS
def test_gradcheck_and_gradgradcheck_in_x_and_parameters(direct):
    cell = Cell()
    deq = DEQ(cell, M, **TIGHT, direct_backward=direct)
    x, params = inputs(2), list(cell.parameters())

    def z_star(x_, *values):
        names = dict(deq.named_parameters())
        return torch.func.functional_call(deq, dict(zip(names, values, strict=True)), (x_,))

    args = (x, *[p.detach().clone().requires_grad_(True) for p in params])
    assert torch.autograd.gradcheck(z_star, args, atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradgradcheck(z_star, args, atol=1e-7, rtol=1e-6)


def third_derivative_loss_gradient(z_of_x, cell, x):
    """d/dtheta of sum (d^3 z* / dt^3)^2 along e, by three create_graph autograd calls."""
    t = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device, requires_grad=True)
    e = torch.tensor([1.0, -0.5], dtype=x.dtype, device=x.device)
    d = z_of_x(x.detach() + t[:, None] * e)
    for _ in range(3):
        d = torch.stack([torch.autograd.grad(d[:, j].sum(), t, create_graph=True)[0] for j in range(M)], 1)
    return d, torch.autograd.grad((d**2).sum(), list(cell.parameters()))


def assert_third_order_matches_unrolled(deq, cell):
    """The third derivative along a line and its loss's parameter gradient, through the
    layer and through autograd of the unrolled iteration, agree."""
    x = inputs()
    d3, grads = third_derivative_loss_gradient(deq, cell, x)
    d3_ref, grads_ref = third_derivative_loss_gradient(lambda x_: unrolled(cell, x_), cell, x)
    torch.testing.assert_close(d3, d3_ref, rtol=1e-9, atol=1e-11)
    for mine, reference in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-9, atol=1e-11)


@BACKWARDS
def test_third_order_matches_autograd_through_the_unrolled_iteration(direct):
    cell = Cell()
    deq = DEQ(cell, M, **TIGHT, direct_backward=direct)
    assert_third_order_matches_unrolled(deq, cell)


def pinn_gradient(z_of_x, cell, head):
    """A heat-equation residual written as a PINN user writes it."""
    t = torch.linspace(0, 1, 5, dtype=torch.float64).requires_grad_(True)
    s = torch.linspace(0.1, 0.9, 5, dtype=torch.float64).requires_grad_(True)
    u = head(z_of_x(torch.stack([t, s], dim=1))).squeeze(-1)
    (u_t,) = torch.autograd.grad(u.sum(), t, create_graph=True)
    (u_x,) = torch.autograd.grad(u.sum(), s, create_graph=True)
    (u_xx,) = torch.autograd.grad(u_x.sum(), s, create_graph=True)
    loss = ((u_t - 0.1 * u_xx) ** 2).mean()
    for p in [*cell.parameters(), *head.parameters()]:
        p.grad = None
    loss.backward()
    parameters = [*cell.parameters(), *head.parameters()]
    return [torch.zeros_like(p) if p.grad is None else p.grad for p in parameters]


@BACKWARDS
def test_pinn_loss_backward_is_exact(direct):
    cell, head = Cell(), torch.nn.Linear(M, 1, dtype=torch.float64)
    deq = DEQ(cell, M, **TIGHT, direct_backward=direct)
    mine = pinn_gradient(deq, cell, head)
    backward_solvers = {s.solver for s in deq.stats if s.phase == "backward"}
    assert backward_solvers == ({"dense-lu"} if direct else {"fixed_point"})
    reference = pinn_gradient(lambda x_: unrolled(cell, x_), cell, head)
    for a, b in zip(mine, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_torch_func_grad_and_autograd_functional_hessian_agree_with_autograd():
    cell = Cell()
    deq = DEQ(cell, M, **TIGHT)
    x = inputs().detach()
    params = dict(deq.named_parameters())

    def loss(p, x_):
        return (torch.func.functional_call(deq, p, (x_,)) ** 3).sum()

    by_func = torch.func.grad(loss)(params, x)
    by_autograd = torch.autograd.grad(loss(params, x), list(params.values()))
    for name, value in zip(params, by_autograd, strict=True):
        torch.testing.assert_close(by_func[name], value, rtol=1e-10, atol=1e-12)
    hessian = torch.autograd.functional.hessian(lambda x_: loss(params, x_), x)
    reference = torch.autograd.functional.hessian(lambda x_: (unrolled(cell, x_) ** 3).sum(), x)
    torch.testing.assert_close(hessian, reference, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("shape", [(N,), (2, 3, N)])
def test_any_batch_shape(shape):
    cell = Cell()
    deq = DEQ(cell, M, **TIGHT)
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    z = deq(x)
    assert z.shape == (*shape[:-1], M)
    torch.testing.assert_close(z, deq(x.reshape(-1, N)).reshape(z.shape), rtol=1e-11, atol=1e-12)
    (gx,) = torch.autograd.grad(z.square().sum(), x)
    (gx_ref,) = torch.autograd.grad(unrolled(cell, x).square().sum(), x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-9, atol=1e-11)


def test_float32_agrees_with_float64():
    x64 = inputs().detach()
    cell64 = Cell(torch.float64)
    cell32 = copy.deepcopy(cell64).float()
    grads = []
    for cell, x in ((cell32, x64.float()), (cell64, x64)):
        deq = DEQ(cell, M)
        z = deq(x.requires_grad_(True))
        assert z.dtype == x.dtype
        _, g = third_derivative_loss_gradient(deq, cell, x)
        grads.append(g)
    for a, b in zip(*grads, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=1e-3, atol=1e-4)


def test_buffers_and_train_eval_are_honoured():
    cell = Cell()
    deq = DEQ(cell, M, **TIGHT)
    x = inputs().detach()
    trained = deq(x)
    torch.testing.assert_close(trained, cell(trained, x), rtol=1e-11, atol=1e-12)
    deq.eval()
    assert not cell.training
    evaluated = deq(x)
    torch.testing.assert_close(evaluated, cell(evaluated, x), rtol=1e-11, atol=1e-12)
    assert (evaluated - trained).abs().max() > 1e-2
    cell.scale.fill_(0.5)
    rescaled = deq(x)
    torch.testing.assert_close(rescaled, cell(rescaled, x), rtol=1e-11, atol=1e-12)
    (gw,) = torch.autograd.grad(rescaled.sum(), cell.W)  # the buffer is a constant, not an input
    (gw_ref,) = torch.autograd.grad(unrolled(cell, x).sum(), cell.W)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-9, atol=1e-11)


def test_every_solve_that_falls_short_warns_and_the_layer_keeps_its_statistics():
    x = inputs()
    with pytest.warns(deqbench.NotConvergedWarning, match="forward solve"):
        DEQ(Cell(), M, max_iter=2)(x)
    deq = DEQ(Cell(), M, backward_max_iter=2, direct_backward=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the forward converges: no warning yet
        z = deq(x)
    assert [s.phase for s in deq.stats] == ["forward"] and deq.stats[0].converged
    with pytest.warns(deqbench.NotConvergedWarning, match="backward solve"):
        z.sum().backward()
    assert [s.phase for s in deq.stats] == ["forward", "backward"]
    assert deq.last_stats is deq.stats[-1] and not deq.last_stats.converged


def graph_size_of_a_second_order_gradient(iterations: int) -> tuple[int, int]:
    """Nodes and saved bytes of the autograd graph of a second-order gradient (d/dx of a
    sum, kept with create_graph), each solve run for exactly ``iterations`` steps (tol 0).

    Walked from the gradient's grad_fn (saved_tensors_hooks cannot meter it: torch.func,
    which the backward calls for partials, refuses them); an iteration recorded by autograd
    would add nodes and saved tensors per step."""
    deq = DEQ(
        Cell(),
        M,
        tol=0,
        backward_tol=0,
        max_iter=iterations,
        backward_max_iter=iterations,
        direct_backward=False,
    )
    x = inputs()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deqbench.NotConvergedWarning)
        (gx,) = torch.autograd.grad(deq(x).sum(), x, create_graph=True)
    nodes, saved, stack = set(), 0, [gx.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in nodes:
            continue
        nodes.add(node)
        for name in dir(node):
            if name.startswith("_saved_"):
                value = getattr(node, name)
                if isinstance(value, torch.Tensor):
                    saved += value.nbytes
        for tensor in getattr(node, "saved_tensors", ()) or ():  # custom Functions' ctx
            saved += tensor.nbytes
        stack.extend(next_node for next_node, _ in node.next_functions)
    return len(nodes), saved


def test_direct_backward_only_where_more_solves_follow():
    """J's factors cost more than one iterated solve: a plain first-order backward iterates
    (again when run twice: the same digits), one that records its graph (create_graph)
    factors."""
    deq, x = DEQ(Cell(), M, **TIGHT), inputs()
    deq(x).sum().backward()
    assert [s.solver for s in deq.stats if s.phase == "backward"] == ["fixed_point"]
    (gx,) = torch.autograd.grad(deq(x).sum(), x, create_graph=True)
    gx.sum().backward()
    assert {s.solver for s in deq.stats if s.phase == "backward"} == {"dense-lu"}
    z = deq(x)
    z.sum().backward(retain_graph=True)
    z.sum().backward()
    assert [s.solver for s in deq.stats if s.phase == "backward"] == ["fixed_point", "fixed_point"]


class BatchCoupledCell(Cell):
    """Cell plus a pull towards the batch's mean state: J is not block-diagonal per sample."""

    def forward(self, z, x):
        return super().forward(z, x) + 0.2 * z.mean(dim=0, keepdim=True)


def test_direct_backward_falls_back_to_iterating_on_a_layer_that_couples_samples():
    cell = BatchCoupledCell()
    deq = DEQ(cell, M, **TIGHT)
    assert_third_order_matches_unrolled(deq, cell)
    assert {s.solver for s in deq.stats if s.phase == "backward"} == {"fixed_point"}


def test_memory_does_not_grow_with_iterations():
    few, many = graph_size_of_a_second_order_gradient(5), graph_size_of_a_second_order_gradient(60)
    assert few[0] > 3 and few[1] > 0
    assert many == few


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"z_init": "zeros"}, TypeError, "z_init must be an int"),
        ({"z_init": 0}, ValueError, "z_init as a state width"),
        ({"z_init": M, "solver": "newton"}, ValueError, "unknown solver"),
        ({"z_init": M, "tol": -1.0}, ValueError, "tol must be"),
        ({"z_init": M, "max_iter": 0}, ValueError, "max_iter must be"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(kwargs, error, match):
    with pytest.raises(error, match=match):
        DEQ(Cell(), **kwargs)


def test_bad_f_and_bad_z_init_results_are_refused():
    with pytest.raises(TypeError, match="f must be a torch.nn.Module"):
        DEQ(lambda z, x: z, M)
    with pytest.raises(TypeError, match=r"z_init\(x\) must return a tensor"):
        DEQ(Cell(), lambda x: [0.0] * M)(inputs())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    cell = Cell()
    x = inputs().detach()
    _, on_cpu = third_derivative_loss_gradient(DEQ(cell, M, **TIGHT), cell, x)
    cell.cuda()
    _, on_cuda = third_derivative_loss_gradient(DEQ(cell, M, **TIGHT), cell, x.cuda())
    for a, b in zip(on_cpu, on_cuda, strict=True):
        assert b.is_cuda
        torch.testing.assert_close(a, b.cpu(), rtol=1e-9, atol=1e-11)
