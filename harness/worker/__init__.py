"""Worker processes: one cell built and measured in a process of its own (time, memory,
saved bytes), under a deadline and a memory cap.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["server"],
    submod_attrs={
        "cell": ["CellSpec", "PreparedCell", "build_problem"],
        "measure": ["MeasureJob", "Measurement", "MEASURED", "use_threads", "on_cpu"],
        "memory": ["peak_memory", "saved_tensor_bytes"],
        "server": ["WorkerServer", "run_job", "deadline_after", "Stopped"],
    },
)
