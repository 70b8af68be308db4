"""One query of one strategy on one problem: its time, memory, accuracy and solver work.

Every class is parametrised over the whole strategy x problem x query matrix of
``deqbench.harness.run.matrix.build_matrix`` (quick size preset); a cell the strategy or the
problem cannot answer raises ``NotImplementedError`` in ``setup``, which asv records as
skipped. Lower is better for every number here, as ``asv compare`` assumes.
"""

from __future__ import annotations

from deqbench.harness.results import MetricName

from . import common


class MatrixBenchmark:
    """The matrix as asv parameters, and a prepared cell per benchmark process."""

    params = common.PARAMS
    param_names = common.PARAM_NAMES
    timeout = 120  # seconds per combination; a quick cell takes well under one

    def setup(self, strategy: str, problem: str, query: str) -> None:
        self.cell = common.prepared_cell(strategy, problem, query)


class QueryTime(MatrixBenchmark):
    def setup(self, strategy, problem, query):
        super().setup(strategy, problem, query)
        self.cell.warm_up()

    def time_query(self, strategy, problem, query):
        """Wall time of one query: forward solve and every derivative it asks for."""
        self.cell.run()


class QueryPeakMemory(MatrixBenchmark):
    def peakmem_query(self, strategy, problem, query):
        """Peak resident memory of the benchmark process while it answers the query.

        asv's measure is the whole process's, torch included, so it moves with the query's
        own memory only when that is large; the bytes autograd saves are tracked exactly in
        :class:`QuerySavedTensors`.
        """
        self.cell.run()


class QueryAccuracy:
    """Relative error against the harness's float64 oracle (worst output of the query)."""

    params = common.PARAMS
    param_names = common.PARAM_NAMES
    timeout = 120

    def setup_cache(self):
        # Once per asv run, not per combination: every forked process reads the answers.
        return common.oracle_references()

    setup_cache.timeout = 600  # the oracle for the whole matrix, on a fresh machine

    def setup(self, references, strategy, problem, query):
        self.cell = common.prepared_cell(strategy, problem, query)
        self.reference = references[(strategy, problem, query)]

    def track_relative_error(self, references, strategy, problem, query):
        return common.max_relative_error(self.cell.run().values, self.reference)

    track_relative_error.unit = "relative error"


class QueryCompileTime(MatrixBenchmark):
    def setup(self, strategy, problem, query):
        super().setup(strategy, problem, query)
        if self.cell.backend == "torch":
            raise NotImplementedError("torch strategies compile nothing")

    def track_compile_time(self, strategy, problem, query):
        """Seconds to lower and compile the query for the instance (JAX strategies): a cost of
        its own, left out of every timed run."""
        return self.cell.strategy.compile(query, self.cell.problem).seconds

    track_compile_time.unit = "seconds"


class QuerySavedTensors(MatrixBenchmark):
    def setup(self, strategy, problem, query):
        super().setup(strategy, problem, query)
        if self.cell.backend != "torch":
            raise NotImplementedError("no autograd graph: saved tensors are a torch measure")

    def track_saved_tensor_bytes(self, strategy, problem, query):
        """Peak bytes autograd holds for backward during the query (each storage once).

        Measured as the harness measures it; NaN (shown as n/a) where a torch.func transform
        refuses saved-tensor hooks.
        """
        return self.cell.saved_bytes()

    track_saved_tensor_bytes.unit = "bytes"


class QuerySolverIterations(MatrixBenchmark):
    """Fixed-point iterations the query took, over all its forward or backward solves."""

    def track_forward_iterations(self, strategy, problem, query):
        return self.cell.run().solver_totals()[MetricName.FORWARD_ITERATIONS]

    track_forward_iterations.unit = "iterations"

    def track_backward_iterations(self, strategy, problem, query):
        return self.cell.run().solver_totals()[MetricName.BACKWARD_ITERATIONS]

    track_backward_iterations.unit = "iterations"
