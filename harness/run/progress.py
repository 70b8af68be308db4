"""Progress of a run: what the run loop tells as cells start and finish.

:class:`SilentReporter` says nothing; :class:`ProgressReporter` draws a rich progress bar
on stderr (the current cell, cells done, elapsed time, ETA) and prints every cell that is
neither ok nor unsupported above it as it finishes.
"""

from __future__ import annotations

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


class Reporter(Protocol):
    def started(self, planned, index: int, total: int) -> None: ...

    def finished(self, planned, status: str) -> None: ...


class SilentReporter:
    def started(self, planned, index: int, total: int) -> None:
        pass

    def finished(self, planned, status: str) -> None:
        pass

    def __enter__(self) -> SilentReporter:
        return self

    def __exit__(self, *exc) -> None:
        pass


class ProgressReporter:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(*progress_columns(), console=self.console, transient=True)
        self.task = None

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def started(self, planned, index: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("", total=total)
        self.progress.update(self.task, description=planned.cell.id)

    def finished(self, planned, status: str) -> None:
        if status not in (Status.OK, Status.UNSUPPORTED):
            style = summary.cell_style(status, planned.cell.expected_exact)
            self.console.print(f"{planned.cell.id}: {status}", style=style, highlight=False)
        self.progress.advance(self.task)


def reporter(progress: bool) -> ProgressReporter | SilentReporter:
    return ProgressReporter() if progress else SilentReporter()
