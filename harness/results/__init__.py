"""Results: a run folder (settings, one parquet file per finished cell, a lock), its tidy
rows and the cell statuses.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["rows"],
    submod_attrs={
        "run_folder": ["RunFolder", "UnreadableRun", "FolderInUse", "RUN_FILE"],
        "status": ["Status", "FAILED_VERIFICATION", "UNVERIFIED"],
        "rows": ["COLUMNS", "Metric", "safe_name", "format_size"],
        "files": ["write_atomically"],
    },
)
