"""The public names of this package (loaded on first use: see __init__.py)."""

from . import rows as rows
from .files import write_atomically as write_atomically
from .life_cycle import RunAborted as RunAborted
from .life_cycle import create_run as create_run
from .life_cycle import prepare_out as prepare_out
from .metrics import MetricName as MetricName
from .rows import COLUMNS as COLUMNS
from .rows import Metric as Metric
from .rows import format_size as format_size
from .rows import safe_name as safe_name
from .run_folder import (
    RUN_FILE as RUN_FILE,
)
from .run_folder import (
    FolderInUse as FolderInUse,
)
from .run_folder import (
    RunFolder as RunFolder,
)
from .run_folder import (
    UnreadableRun as UnreadableRun,
)
from .status import FAILED_VERIFICATION as FAILED_VERIFICATION
from .status import UNVERIFIED as UNVERIFIED
from .status import Status as Status
