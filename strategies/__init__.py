"""Strategies: one way of differentiating a fixed point a file. A module here that defines a
Strategy subclass with a `name` registers it; nothing else needs to change."""

from deqbench.strategies.base import STRATEGIES, Strategy

__all__ = ["STRATEGIES", "Strategy"]
