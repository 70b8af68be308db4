"""Strategies: one way of differentiating a fixed point a file. A module here that defines a
Strategy subclass with a `name` registers it; nothing else needs to change.

What a strategy author subclasses: :class:`Strategy` (the contract), or one of the two
public bases that answer queries for you: :class:`AutogradStrategy` (torch: implement
``z_star`` and autograd answers every query) and :class:`JaxStrategy` (JAX: one jitted
method per query, solves through ``solve_forward`` / ``solve_backward``).
"""

from deqbench.strategies._autograd import AutogradStrategy
from deqbench.strategies._jax import JaxStrategy
from deqbench.strategies.base import STRATEGIES, Strategy

__all__ = ["STRATEGIES", "AutogradStrategy", "JaxStrategy", "Strategy"]
