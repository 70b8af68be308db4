"""Problems: one family a file. A module here that defines a Problem subclass with a `name`
registers it; nothing else needs to change."""

from deqbench.problems.base import PROBLEMS, FunctionProblem, Problem

__all__ = ["PROBLEMS", "FunctionProblem", "Problem"]
