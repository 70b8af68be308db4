"""The public names of this package (loaded on first use: see __init__.py)."""

from . import executor_bench as executor_bench
from . import gpu_table as gpu_table
from . import speed as speed
