"""Recovery for :func:`molgen.chem._pool.pmap_lists` when a worker process dies.

The guard (:mod:`molgen.chem.guard`) keeps known killers away from RDKit, but
a molecule of a shape nobody has met yet can still crash RDKit's C++ code
(a signal: SIGSEGV, SIGABRT) or hang in it. Inside a ``ProcessPoolExecutor``
either one breaks the whole pool, and every chunk still pending is lost with
it. This module redoes those chunks molecule by molecule, each chunk in a
fresh child process that reports every result as soon as it has it. When a
child dies, the molecule it was working on is the culprit: it gets
``on_failure(item, reason)`` -- reason ``"crashed"`` for a signal,
``"timeout"`` when the per-molecule alarm killed it -- and a new child takes
the rest of the chunk. Up to ``workers`` children run at once.

Time limits use ``SIGALRM`` with its default action (terminate): a Python
handler would never run while RDKit is stuck inside one C++ call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import faulthandler
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from molgen.errors import WorkerCrashError

__all__ = ["FAILURE_KINDS", "arm_alarm", "recover_chunks"]

#: Reasons passed to ``on_failure``.
FAILURE_KINDS: tuple[str, ...] = ("crashed", "timeout")

# setitimer takes a float; beyond this a limit means "none" (and avoids overflow).
_NO_ALARM = 1e7


def arm_alarm(seconds: float | None) -> None:
    """Kill this process with ``SIGALRM`` after ``seconds`` (``None``/0: cancel the alarm)."""
    if hasattr(signal, "setitimer"):
        value = 0.0 if not seconds or seconds >= _NO_ALARM else float(seconds)
        signal.setitimer(signal.ITIMER_REAL, value)


def recover_chunks(
    func: Callable[[list], list],
    chunks: list[list],
    on_failure: Callable[[Any, str], Any] | None,
    seconds: float | None,
    workers: int,
    context: Any,
) -> list[list]:
    """``[func(chunk) for chunk in chunks]``, surviving children that die on one item.

    Raises:
        WorkerCrashError: an item killed its child and ``on_failure`` is ``None``.
        Exception: whatever ``func`` raises, as the pool would.
    """
    results: list[list | None] = [None] * len(chunks)
    pending = list(range(len(chunks)))
    active: dict[int, _Runner] = {}
    try:
        while pending or active:
            while pending and len(active) < max(1, workers):
                index = pending.pop(0)
                active[index] = _Runner(func, chunks[index], seconds, context)
            wait([handle for runner in active.values() for handle in runner.handles()])
            for index, runner in list(active.items()):
                if runner.step(on_failure):
                    results[index] = runner.out
                    del active[index]
    finally:
        for runner in active.values():
            runner.stop()
    return [r if r is not None else [] for r in results]


class _Runner:
    """One child process working through the remaining items of one chunk."""

    def __init__(self, func: Callable[[list], list], chunk: list, seconds: float | None, context: Any) -> None:
        self.func, self.chunk, self.seconds, self.context = func, chunk, seconds, context
        self.out: list = []
        self._start()

    def _start(self) -> None:
        self.recv, send = self.context.Pipe(duplex=False)
        rest = self.chunk[len(self.out) :]
        self.proc = self.context.Process(target=_child, args=(self.func, rest, send, self.seconds, os.getpid()), daemon=True)
        self.proc.start()
        send.close()

    def handles(self) -> list:
        return [self.recv, self.proc.sentinel]

    def step(self, on_failure: Callable[[Any, str], Any] | None) -> bool:
        """Collect what the child sent; restart it past a killer item. ``True`` when the chunk is done."""
        self._drain()
        if len(self.out) == len(self.chunk):
            self.stop()
            return True
        if self.proc.is_alive():
            return False
        self._drain()  # results sent just before the child died
        if len(self.out) == len(self.chunk):
            self.stop()
            return True
        code = self.proc.exitcode
        self.stop()
        reason = "timeout" if code == -signal.SIGALRM else "crashed"
        item = self.chunk[len(self.out)]
        if on_failure is None:
            shown = repr(item) if len(repr(item)) <= 80 else repr(item)[:77] + "..."
            if reason == "timeout":
                raise WorkerCrashError(f"a worker process ran past the time limit on {shown}; remove that input or raise it (MOLGEN_LIMITS=max_seconds=N)")
            raise WorkerCrashError(f"a worker process died (exit code {code}) on {shown}; remove that input, which crashes the chemistry library")
        self.out.append(on_failure(item, reason))
        if len(self.out) == len(self.chunk):
            return True
        self._start()
        return False

    def _drain(self) -> None:
        error = None
        try:
            while error is None and self.recv.poll():
                status, value = self.recv.recv()
                if status == "err":
                    error = value
                else:
                    self.out.append(value)
        except (EOFError, OSError):
            pass
        if error is not None:
            self.stop()
            raise error

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.recv.close()


def _child(func: Callable[[list], list], items: list, conn: Connection, seconds: float | None, parent: int) -> None:
    _die_with_parent(parent)
    for item in items:
        arm_alarm(seconds)
        try:
            message = ("ok", func([item])[0])
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
            message = ("err", exc)
        arm_alarm(None)
        conn.send(message)
    conn.close()


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Worker initializer: ask the kernel for SIGTERM when the parent dies (Linux), and leave Ctrl-C to the parent.

    Ctrl-C reaches every process of the terminal's group; the parent stops the
    pool and reports in one line, so workers ignore it instead of each printing
    a traceback.
    """
    # The time limit kills a stuck worker with SIGALRM's default action (a handler
    # inherited from the parent, e.g. pytest-timeout's, would need the GIL back).
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A worker's crash is counted and reported by the parent, not dumped as a traceback on the console.
    faulthandler.disable()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)
