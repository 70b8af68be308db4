"""The public names of this package (loaded on first use: see __init__.py)."""

from . import compare as compare
from .data import (
    ReportInputError as ReportInputError,
)
from .data import (
    cell_table as cell_table,
)
from .data import (
    load_many as load_many,
)
from .data import (
    load_rows as load_rows,
)
from .documents import write_report as write_report
from .figures import (
    KNOWN_STRATEGIES as KNOWN_STRATEGIES,
)
from .figures import (
    make_figures as make_figures,
)
from .figures import (
    strategy_style as strategy_style,
)
from .markdown import error_tables as error_tables
from .markdown import side_by_side_table as side_by_side_table
from .ratios import ratio_table as ratio_table
from .summary import print_summary as print_summary
