"""`analytic`'s speed targets as ratios, from one interleaved measurement.

``setup_cache`` runs :mod:`deqbench.harness.bench.speed` once per asv run (tanh, batch 128,
float64, tol 1e-10, one thread, m = 64, 256, 1024; JAX compilation excluded); each track
reads one ratio of that table, so that ``asv compare`` flags a commit that makes
`analytic` slower relative to a plain forward solve or to the strategies it is compared
with, whatever the machine's speed that day. Lower is better for every number here.
Not in CI's smoke run (which selects the matrix's ``'tanh'`` cells): the table takes
minutes.
"""

from __future__ import annotations

import torch

from deqbench.harness.bench import speed

OURS = ("analytic", "jax-analytic")


def peers(rows, m, query, backend):
    """The other strategies of ``backend`` timed on this query (each claims it exact)."""
    return [
        r["strategy"]
        for r in rows
        if r["m"] == m and r["query"] == query and r["backend"] == backend and r["strategy"] not in OURS
    ]


def ratio(rows, m, query, strategy, reference):
    """median time of ``strategy`` over ``reference``'s in the table (``reference`` a name or
    the plain forward solve)."""
    times = {(r["query"], r["strategy"]): r["median_ms"] for r in rows if r["m"] == m}
    base = times[speed.FORWARD, "-"] if reference == speed.FORWARD else times[query, reference]
    return times[query, strategy] / base


class AnalyticSpeed:
    params = [[64, 256, 1024], ["grad", "pinn_grad"]]
    param_names = ["m", "query"]
    timeout = 1200

    def setup_cache(self):
        threads = torch.get_num_threads()
        try:
            return speed.main(["--repeats", "5"])
        finally:
            torch.set_num_threads(threads)

    setup_cache.timeout = 1800

    def track_analytic_over_forward_solve(self, rows, m, query):
        """`analytic`'s time over one plain forward solve (target: grad 2, pinn_grad 4)."""
        return ratio(rows, m, query, "analytic", speed.FORWARD)

    track_analytic_over_forward_solve.unit = "ratio"

    def track_analytic_over_fastest_torch_peer(self, rows, m, query):
        """`analytic` over the fastest other torch strategy that claims the query exact (target:
        below 1)."""
        return min(ratio(rows, m, query, "analytic", peer) for peer in peers(rows, m, query, "torch"))

    track_analytic_over_fastest_torch_peer.unit = "ratio"

    def track_jax_analytic_over_fastest_jax_peer(self, rows, m, query):
        """`jax-analytic` over the fastest JAX strategy that differentiates it otherwise."""
        return min(ratio(rows, m, query, "jax-analytic", peer) for peer in peers(rows, m, query, "jax"))

    track_jax_analytic_over_fastest_jax_peer.unit = "ratio"
