"""The oracles: independent float64 answers to every query (torch and JAX, sharing no code),
their disk cache, and relative errors.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["jax_oracle"],
    submod_attrs={
        "torch_oracle": ["oracle", "OracleAnswer", "OracleError"],
        "cache": ["OracleCache", "OracleCacheWarning", "CACHE_ENV"],
        "accuracy": ["relative_error", "relative_errors"],
    },
)
