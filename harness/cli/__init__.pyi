"""The public names of this package (loaded on first use: see __init__.py)."""

from .main import main as main
