"""The public names of this package (loaded on first use: see __init__.py)."""

from . import server as server
from .cell import CellSpec as CellSpec
from .cell import PreparedCell as PreparedCell
from .cell import build_problem as build_problem
from .measure import (
    MEASURED as MEASURED,
)
from .measure import (
    MeasureJob as MeasureJob,
)
from .measure import (
    Measurement as Measurement,
)
from .measure import (
    on_cpu as on_cpu,
)
from .measure import (
    use_threads as use_threads,
)
from .memory import peak_memory as peak_memory
from .memory import saved_tensor_bytes as saved_tensor_bytes
from .server import (
    Stopped as Stopped,
)
from .server import (
    WorkerServer as WorkerServer,
)
from .server import (
    deadline_after as deadline_after,
)
from .server import (
    run_job as run_job,
)
