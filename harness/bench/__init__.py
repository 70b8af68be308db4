"""Benchmarks run as modules (python -m deqbench.harness.bench.X): the interleaved speed
table, its GPU version and the executor comparison.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["executor_bench", "gpu_table", "speed"],
    submod_attrs={},
)
