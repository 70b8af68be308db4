"""A PIDEQ on the heat equation, trained through deqbench.nn.DEQ as a PINN is written.

    u_t = kappa u_xx on [0, 1] x [0, 1],  u(0, x) = sin(pi x),  u(t, 0) = u(t, 1) = 0,
    exact: u = sin(pi x) exp(-kappa pi^2 t).

u_t and u_xx come from torch.autograd.grad(..., create_graph=True) through the layer's output,
and loss.backward() differentiates them: exact at every order (no hook, no unrolling).

    python examples/heat_pideq.py [steps]        (default 300; CI runs a few)
"""

import math
import sys

import torch

from deqbench.nn import DEQ

KAPPA, M = 0.1, 24
torch.manual_seed(0)


class Cell(torch.nn.Module):
    """f(z, (t, x)) = tanh(W z + U (t, x) + b), with |W| <= 0.9: a contraction in z."""

    def __init__(self):
        super().__init__()
        self.W, self.U = torch.nn.Linear(M, M, bias=False), torch.nn.Linear(2, M)

    def forward(self, z, tx):
        w = 0.9 * self.W.weight / self.W.weight.norm().clamp_min(1.0)  # Frobenius >= spectral norm
        return torch.tanh(z @ w.T + self.U(tx))


class PIDEQ(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.deq, self.head = DEQ(Cell(), z_init=M), torch.nn.Linear(M, 1)  # z_init=M: zeros

    def forward(self, t, x):
        return self.head(self.deq(torch.stack([t, x], dim=-1))).squeeze(-1)


def grad(u, wrt):
    return torch.autograd.grad(u.sum(), wrt, create_graph=True)[0]


def loss_of(model, t, x, t0, x0, tb, xb):
    u = model(t, x)
    u_t, u_x = grad(u, t), grad(u, x)
    u_xx = grad(u_x, x)
    physics = ((u_t - KAPPA * u_xx) ** 2).mean()
    initial = ((model(t0, x0) - torch.sin(math.pi * x0)) ** 2).mean()
    boundary = (model(tb, xb) ** 2).mean()
    return physics + initial + boundary


def main(steps: int) -> float:
    model = PIDEQ()
    t, x = torch.rand(128, requires_grad=True), torch.rand(128, requires_grad=True)
    t0, x0, tb, xb = torch.zeros(64), torch.rand(64), torch.rand(64), torch.randint(0, 2, (64,)).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        optimizer.zero_grad()
        loss = loss_of(model, t, x, t0, x0, tb, xb)
        loss.backward()
        optimizer.step()
        if step == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.4e}")
    with torch.no_grad():
        tt, xx = torch.rand(1000), torch.rand(1000)
        exact = torch.sin(math.pi * xx) * torch.exp(-KAPPA * math.pi**2 * tt)
        error = ((model(tt, xx) - exact).norm() / exact.norm()).item()
    print(f"final loss {loss.item():.4e}, relative L2 error against the exact solution {error:.3e}")
    return loss.item()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
