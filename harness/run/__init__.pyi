"""The public names of this package (loaded on first use: see __init__.py)."""

from .api import run as run
from .dask_executor import DaskExecutor as DaskExecutor
from .executors import make_executor as make_executor
from .matrix import (
    PlannedCell as PlannedCell,
)
from .matrix import (
    build_matrix as build_matrix,
)
from .matrix import (
    own_strategy_names as own_strategy_names,
)
from .matrix import (
    peer_names as peer_names,
)
from .matrix import (
    problem_names as problem_names,
)
from .matrix import (
    query_names as query_names,
)
from .matrix import (
    quick_spec as quick_spec,
)
from .settings import RunSettings as RunSettings
from .settings import make_settings as make_settings
from .settings import split_size as split_size
from .verdicts import (
    ORACLES_AGREE_TOL as ORACLES_AGREE_TOL,
)
from .verdicts import (
    OracleResult as OracleResult,
)
from .verdicts import (
    judge as judge,
)
from .verdicts import (
    judge_against as judge_against,
)
