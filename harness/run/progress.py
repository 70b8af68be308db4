"""Progress of a run: what the run loop tells before the first cell and as cells start and
finish.

:class:`SilentReporter` says nothing. On a terminal, :class:`ProgressReporter` draws a rich
progress bar on stderr (the current cell, cells done, elapsed time, ETA); off one (a file,
CI), :class:`LineReporter` writes a progress line at a steady pace instead (every
:data:`LINE_EVERY_FRACTION` of the cells or :data:`LINE_EVERY_S` seconds, whichever comes
first). Both print the run's plan first, and every cell that is neither ok nor unsupported
as it finishes (a deviation on a query its strategy does not claim exact reads as one).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from deqbench.harness.report import summary
from deqbench.harness.results.status import Status


def progress_columns() -> tuple:
    """The bar's columns: what runs now, done of total, elapsed time and ETA."""
    return (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )


#: Off a terminal, a progress line whenever this share of the cells has finished since the
#: last one, or LINE_EVERY_S seconds have passed (checked as cells start and finish).
LINE_EVERY_FRACTION = 0.05
LINE_EVERY_S = 30.0


class Reporter(Protocol):
    def plan(self, line: str) -> None: ...

    def started(self, planned, index: int, total: int) -> None: ...

    def finished(self, planned, status: str) -> None: ...


def finished_line(planned, status: str) -> str:
    """A finished cell worth a line of its own, its status as the summary says it."""
    return f"{planned.cell.id}: {summary.status_label(status, planned.cell.expected_exact)}"


def worth_a_line(status: str) -> bool:
    return status not in (Status.OK, Status.UNSUPPORTED)


def clock(seconds: float) -> str:
    """12.3 -> '12 s', 754 -> '12 min 34 s', 4000 -> '1 h 06 min'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class SilentReporter:
    def plan(self, line: str) -> None:
        pass

    def started(self, planned, index: int, total: int) -> None:
        pass

    def finished(self, planned, status: str) -> None:
        pass

    def __enter__(self) -> SilentReporter:
        return self

    def __exit__(self, *exc) -> None:
        pass


class ProgressReporter:
    """A rich progress bar on a terminal's stderr."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(*progress_columns(), console=self.console, transient=True)
        self.task = None

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def plan(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True)

    def started(self, planned, index: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, description=planned.cell.id)

    def finished(self, planned, status: str) -> None:
        if worth_a_line(status):
            style = summary.cell_style(status, planned.cell.expected_exact)
            self.console.print(finished_line(planned, status), style=style, highlight=False, soft_wrap=True)
        self.progress.advance(self.task)


class LineReporter:
    """Plain lines for a log file or CI: the plan, a progress line at a steady pace (cells
    done of all, elapsed time, an estimate of the time left from the pace so far) and each
    cell worth a line as it finishes. Cells may start and finish in several threads."""

    def __init__(self, console: Console | None = None, clock=time.monotonic):
        self.console = console or Console(stderr=True, width=200)
        self.clock = clock
        self.lock = threading.Lock()
        self.total = 0
        self.done = 0
        self.start = self.last_line_at = clock()
        self.done_at_last_line = 0

    def __enter__(self) -> LineReporter:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def plan(self, line: str) -> None:
        self.start = self.last_line_at = self.clock()
        self.console.print(line, highlight=False, soft_wrap=True)

    def started(self, planned, index: int, total: int) -> None:
        with self.lock:
            self.total = total
            if self.clock() - self.last_line_at >= LINE_EVERY_S:
                self.progress_line(f"; now {planned.cell.id}")

    def finished(self, planned, status: str) -> None:
        with self.lock:
            self.done += 1
            if worth_a_line(status):
                self.console.print(finished_line(planned, status), highlight=False, soft_wrap=True)
            step = max(1, round(LINE_EVERY_FRACTION * self.total))
            waited = self.clock() - self.last_line_at >= LINE_EVERY_S
            if self.done - self.done_at_last_line >= step or waited or self.done == self.total:
                self.progress_line()

    def progress_line(self, extra: str = "") -> None:
        """``progress: 42/140 cells (30%), 3 min 12 s elapsed, about 7 min 28 s left``."""
        now = self.clock()
        elapsed = now - self.start
        percent = 100 * self.done / self.total if self.total else 100
        left = ""
        if 0 < self.done < self.total:
            left = f", about {clock(elapsed / self.done * (self.total - self.done))} left"
        counts = f"{self.done}/{self.total} cells ({percent:.0f}%)"
        line = f"progress: {counts}, {clock(elapsed)} elapsed{left}{extra}"
        self.console.print(line, highlight=False, soft_wrap=True)
        self.last_line_at, self.done_at_last_line = now, self.done


def terminal_or_lines(console: Console | None = None) -> ProgressReporter | LineReporter:
    """A progress bar where stderr is a terminal, plain lines at a steady pace elsewhere."""
    console = console or Console(stderr=True)
    return ProgressReporter(console) if console.is_terminal else LineReporter(Console(stderr=True, width=200))


def reporter(progress: bool) -> ProgressReporter | LineReporter | SilentReporter:
    return terminal_or_lines() if progress else SilentReporter()
