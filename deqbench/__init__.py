"""deqbench: which way of differentiating a deep equilibrium model is right, and what it costs.

The Python API in a few lines::

    import deqbench
    problem = deqbench.get_problem("tanh", m=32)
    result = deqbench.query("analytic", problem, "pinn_grad")
    result.values, result.converged

    rows = deqbench.run("analytic,unrolled", "tanh", "pinn_grad", quick=True)  # a DataFrame

Public names: those of __init__.pyi beside this file, each loaded on first use
(lazy_loader), so that `import deqbench` (and with it the `deqbench` command's --version
and --help) imports no torch until a name is used.
"""

import lazy_loader

from deqbench._version import __version__ as __version__

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
