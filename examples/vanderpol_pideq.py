"""A PIDEQ on the Van der Pol oscillator, trained through deqbench.nn.DEQ as a PINN is written.

    x'' - mu (1 - x^2) x' + x = 0 on t in [0, T],  x(0) = 1,  x'(0) = 0.

x' and x'' are torch.autograd.grad(..., create_graph=True) of the layer's output in t, and
loss.backward() differentiates them: exact at every order (no hook, no unrolling).

    python examples/vanderpol_pideq.py [steps]        (default 300; CI runs a few)
"""

import sys

import numpy as np
import torch
from scipy.integrate import solve_ivp

from deqbench.nn import DEQ

MU, T, M = 1.0, 3.0, 24
torch.manual_seed(0)


class Cell(torch.nn.Module):
    """f(z, t) = tanh(W z + U t + b), with |W| <= 0.9: a contraction in z."""

    def __init__(self):
        super().__init__()
        self.W, self.U = torch.nn.Linear(M, M, bias=False), torch.nn.Linear(1, M)

    def forward(self, z, t):
        w = 0.9 * self.W.weight / self.W.weight.norm().clamp_min(1.0)  # Frobenius >= spectral norm
        return torch.tanh(z @ w.T + self.U(t / T))


class PIDEQ(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.deq, self.head = DEQ(Cell(), z_init=M), torch.nn.Linear(M, 1)  # z_init=M: zeros

    def forward(self, t):
        return self.head(self.deq(t[:, None])).squeeze(-1)


def grad(u, wrt):
    return torch.autograd.grad(u.sum(), wrt, create_graph=True)[0]


def loss_of(model, t, t0):
    x = model(t)
    x_t = grad(x, t)
    x_tt = grad(x_t, t)
    physics = ((x_tt - MU * (1 - x**2) * x_t + x) ** 2).mean()
    x0 = model(t0)
    initial = (x0 - 1) ** 2 + grad(x0, t0) ** 2
    return physics + initial.sum()


def main(steps: int) -> float:
    model = PIDEQ()
    t, t0 = torch.linspace(0, T, 128, requires_grad=True), torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        optimizer.zero_grad()
        loss = loss_of(model, t, t0)
        loss.backward()
        optimizer.step()
        if step == 0 or step == steps - 1:
            print(f"step {step}: loss {loss.item():.4e}")
    grid = np.linspace(0, T, 200)
    rhs = lambda _, y: [y[1], MU * (1 - y[0] ** 2) * y[1] - y[0]]  # noqa: E731
    exact = solve_ivp(rhs, (0, T), [1.0, 0.0], t_eval=grid, rtol=1e-10, atol=1e-10).y[0]
    ours = model(torch.tensor(grid, dtype=torch.float32)).detach().numpy()
    error = np.linalg.norm(ours - exact) / np.linalg.norm(exact)
    print(f"final loss {loss.item():.4e}, relative L2 error against solve_ivp {error:.3e}")
    return loss.item()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
