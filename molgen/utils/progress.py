"""Progress reporting with count, rate, elapsed time and ETA.

On a terminal this is a live rich bar. When output goes to a file (``nohup``,
a batch scheduler) a live bar would print nothing until the end, so a plain
status line is written every ``log_every`` seconds instead.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["progress_bar", "ProgressHandle"]

_RESUME_WINDOW_S = 0.5


def _format_stats(stats: dict[str, float]) -> str:
    return "  ".join(f"{k}={v:.4g}" for k, v in stats.items())


class ProgressHandle:
    """Advances a bar; the base handle does nothing (library use, tests)."""

    def advance(self, n: int = 1, **stats: float) -> None:
        return None


class _RichHandle(ProgressHandle):
    def __init__(self, progress: Progress, task_id: int, unit: str) -> None:
        self._progress, self._task, self._unit = progress, task_id, unit

    def advance(self, n: int = 1, **stats: float) -> None:
        speed = self._progress.tasks[self._task].speed
        rate = f"{speed:,.1f} {self._unit}/s" if speed else ""
        self._progress.update(self._task, advance=n, stats=_format_stats(stats), rate=rate)


class _LineHandle(ProgressHandle):
    def __init__(self, total: int | None, description: str, unit: str, log_every: float) -> None:
        self._total, self._description, self._unit, self._every = total, description, unit, log_every
        self._done = 0
        self._start = self._last = time.monotonic()
        self._base = 0  # items already done when the bar started (resume)

    def advance(self, n: int = 1, **stats: float) -> None:
        # A first advance right at the start is a resume (items done before this run) and is left
        # out of the rate; one that comes after real work (a finished chunk) is progress.
        now = time.monotonic()
        if self._done == 0 and not stats and n > 0 and now - self._start < _RESUME_WINDOW_S:
            self._base = n
        self._done += n
        if now - self._last >= self._every or (self._total and self._done >= self._total):
            self._last = now
            elapsed = now - self._start
            rate = (self._done - self._base) / elapsed if elapsed > 0 else 0.0
            eta = (self._total - self._done) / rate if rate and self._total else float("nan")
            total = f"/{self._total:,}" if self._total else ""
            print(
                f"{self._description}: {self._done:,}{total} {rate:,.1f} {self._unit}/s "
                f"elapsed {elapsed / 60:.1f} min eta {eta / 60:.1f} min  {_format_stats(stats)}",
                file=sys.stderr,
                flush=True,
            )


@contextlib.contextmanager
def progress_bar(
    total: int | None, description: str, enabled: bool = True, unit: str = "it", log_every: float = 30.0
) -> Iterator[ProgressHandle]:
    """A progress display showing count, rate, elapsed time, ETA and free-form stats."""
    if not enabled:
        yield ProgressHandle()
        return
    if not Console(stderr=True).is_terminal:
        yield _LineHandle(total, description, unit, log_every)
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
        console=Console(stderr=True),
    )
    with progress:
        task_id = progress.add_task(description, total=total, stats="", rate="")
        yield _RichHandle(progress, task_id, unit)
