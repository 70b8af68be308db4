"""The public names of this package (loaded on first use: see __init__.py)."""

from . import jax_oracle as jax_oracle
from .accuracy import relative_error as relative_error
from .accuracy import relative_errors as relative_errors
from .cache import (
    CACHE_ENV as CACHE_ENV,
)
from .cache import (
    OracleCache as OracleCache,
)
from .cache import (
    OracleCacheWarning as OracleCacheWarning,
)
from .torch_oracle import OracleAnswer as OracleAnswer
from .torch_oracle import OracleError as OracleError
from .torch_oracle import oracle as oracle
