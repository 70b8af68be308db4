"""The public names of deqbench (loaded on first use: see __init__.py)."""

from ._version import __version__ as __version__
from .api import get_problem as get_problem
from .api import get_strategy as get_strategy
from .api import query as query
from .harness.run.api import run as run
from .problems.base import PROBLEMS as PROBLEMS
from .problems.base import FunctionProblem as FunctionProblem
from .problems.base import Problem as Problem
from .queries import QUERIES as QUERIES
from .queries import NotConvergedWarning as NotConvergedWarning
from .queries import QueryResult as QueryResult
from .queries import UnsupportedQueryError as UnsupportedQueryError
from .strategies import STRATEGIES as STRATEGIES
from .strategies import AutogradStrategy as AutogradStrategy
from .strategies import JaxStrategy as JaxStrategy
from .strategies import Strategy as Strategy
from .tolerances import solver_tol as solver_tol
from .tolerances import verify_tol as verify_tol
