"""Progress bars (rich) with count, rate, elapsed time and ETA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar", "ProgressHandle"]


class ProgressHandle:
    """Advances a bar; a handle without a bar does nothing (library use, tests)."""

    def __init__(self, progress: Progress | None = None, task_id: int | None = None, unit: str = "it") -> None:
        self._progress = progress
        self._task = task_id
        self._unit = unit

    def advance(self, n: int = 1, **stats: float) -> None:
        if self._progress is None:
            return
        speed = self._progress.tasks[self._task].speed
        rate = f"{speed:,.1f} {self._unit}/s" if speed else ""
        text = "  ".join(f"{k}={v:.4g}" for k, v in stats.items())
        self._progress.update(self._task, advance=n, stats=text, rate=rate)


@contextlib.contextmanager
def progress_bar(
    total: int | None, description: str, enabled: bool = True, unit: str = "it"
) -> Iterator[ProgressHandle]:
    """A rich bar showing count, rate, elapsed time, ETA and free-form stats."""
    if not enabled:
        yield ProgressHandle()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
    )
    with progress:
        task_id = progress.add_task(description, total=total, stats="", rate="")
        yield ProgressHandle(progress, task_id, unit)
