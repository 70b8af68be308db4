"""A run's accuracy as Markdown tables: ``python -m deqbench.harness.markdown DIR``.

One table a problem, strategy x query, each cell the worst relative error against the
oracle ("—" where the strategy or problem does not support the query); for READMEs and
issue notes.
"""

from __future__ import annotations

import sys

import pandas as pd

from deqbench.harness.run_folder import RunFolder
from deqbench.queries import QUERIES


def error_tables(rows: pd.DataFrame) -> str:
    worst = rows[(rows.metric == "relative_error") & (rows.output.fillna("") == "")]
    strategies = sorted(rows.strategy.unique())
    parts = []
    for problem, frame in rows.groupby("problem", sort=False):
        errors = worst[worst.problem == problem].pivot_table(
            index="strategy", columns="query", values="value"
        )
        queries = [q for q in QUERIES if q in set(frame["query"])]
        errors = errors.reindex(index=strategies, columns=queries)
        lines = [
            f"**{problem}** ({frame['size'].iloc[0]}): worst relative error against the oracle",
            "",
            "| strategy | " + " | ".join(queries) + " |",
            "|---|" + "---|" * len(queries),
        ]
        for strategy, row in errors.iterrows():
            cells = ("—" if pd.isna(value) else f"{value:.1e}" for value in row)
            lines.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m deqbench.harness.markdown RUN_DIR")
    print(error_tables(RunFolder(args[0]).read()))


if __name__ == "__main__":
    main()
