"""Reports: rows in, a cell table, figures, Markdown and HTML documents, run-to-run
comparisons and summary tables out.

The names below are what other packages (and users, tests and benchmarks) may use; every
other module here is internal. They load on first use (lazy_loader), so importing one
module of this package does not import the rest.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submodules=["compare"],
    submod_attrs={
        "data": ["load_rows", "load_many", "cell_table", "ReportInputError"],
        "documents": ["write_report"],
        "figures": ["make_figures", "strategy_style", "KNOWN_STRATEGIES"],
        "summary": ["print_summary"],
        "ratios": ["ratio_table"],
        "markdown": ["error_tables", "side_by_side_table"],
    },
)
