"""Training (deqbench train): a PIDEQ trained with each strategy's gradient, its settings,
models, tables, figures and report.

Public names: those of __init__.pyi beside this file, each loaded on first use
(lazy_loader), so that importing one module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
