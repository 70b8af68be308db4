"""A run: its settings, the strategy x problem x query matrix, the run loop, executors
(local, Dask) and verdicts.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=[],
    submod_attrs={
        "api": ["run"],
        "settings": ["RunSettings", "make_settings", "split_size"],
        "matrix": [
            "build_matrix",
            "own_strategy_names",
            "peer_names",
            "problem_names",
            "query_names",
            "quick_spec",
            "PlannedCell",
        ],
        "executors": ["make_executor"],
        "dask_executor": ["DaskExecutor"],
        "verdicts": ["judge", "judge_against", "OracleResult", "ORACLES_AGREE_TOL"],
    },
)
