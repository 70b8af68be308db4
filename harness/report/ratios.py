"""Side-by-side ratios of one run's cells: ``python -m deqbench.harness.report.ratios DIR``.

Ratios are only meaningful between cells measured in the same run (these machines are
shared and noisy); this prints, for every (problem, query) of a run folder, each strategy's
median time, peak memory and saved bytes over those of a reference strategy.
"""

from __future__ import annotations

import sys

import pandas as pd

from deqbench.harness.results.metrics import MetricName as M
from deqbench.harness.results.run_folder import RunFolder

METRICS = (
    M.TIME_MEDIAN,
    M.COMPILE_TIME,
    M.PEAK_RSS_BYTES,
    M.CUDA_PEAK_BYTES,
    M.JAX_GPU_PEAK_BYTES,
    "xla_temp_size_in_bytes",  # one of the xla_<name> metrics (XLA's memory analysis)
    M.SAVED_TENSOR_BYTES,
)


def ratio_table(rows: pd.DataFrame, reference: str = "analytic") -> pd.DataFrame:
    """reference / other for each metric, strategy, problem and query (below 1: reference wins)."""
    measured = rows[rows.metric.isin(METRICS) & (rows.output.fillna("") == "")]
    values = measured.pivot_table(index=["problem", "query", "metric"], columns="strategy", values="value")
    if reference not in values.columns:
        raise SystemExit(f"strategy {reference!r} is not in this run; it has {', '.join(values.columns)}")
    ratios = values.rdiv(values[reference], axis=0).drop(columns=reference)
    return pd.concat({"value": values, f"{reference} / strategy": ratios}, axis=1)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m deqbench.harness.report.ratios RUN_DIR [REFERENCE_STRATEGY]")
    rows = RunFolder(args[0]).read()
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format
    ):
        print(ratio_table(rows, *args[1:2]))


if __name__ == "__main__":
    main()
