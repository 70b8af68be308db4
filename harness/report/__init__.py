"""Reports: rows in, a cell table, figures, Markdown and HTML documents, run-to-run
comparisons and summary tables out.

Public names: those of __init__.pyi beside this file, each loaded on first use
(lazy_loader), so that importing one module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
