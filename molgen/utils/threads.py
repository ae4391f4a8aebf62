"""CPU counts and torch's thread count (no torch import until a function needs it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from molgen.errors import ConfigError

__all__ = ["available_cpus", "set_torch_threads", "threads_beside", "openmp_wait_policy_for"]

#: Commands (as their leading words) whose OpenMP threads may keep spinning: long training on
#: cores nothing else needs, where a spinning thread answers the next parallel region sooner.
SPINNING_COMMANDS = (("train",), ("image", "train"))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def set_torch_threads(threads: int) -> None:
    """Apply a ``--threads`` option: 0 keeps torch's default (one per core), N sets N intra-op threads."""
    if threads < 0:
        raise ConfigError("--threads must be >= 0")
    if threads:
        import torch

        torch.set_num_threads(threads)


@contextmanager
def threads_beside(workers: int) -> Iterator[None]:
    """Cap torch's intra-op threads, for the block, at the CPUs that ``workers`` busy processes leave free.

    OpenMP threads spin while they wait for each other, and when worker processes
    hold the cores they wait long: ``molgen sample -n 20000`` beside its two RDKit
    workers on 2 cores took 2.3x the wall time with torch's 2 threads as with 1. At
    least one thread is kept, and the previous count is restored afterwards.
    """
    import torch

    before = torch.get_num_threads()
    free = max(1, available_cpus() - workers)
    if before > free:
        torch.set_num_threads(free)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def openmp_wait_policy_for(argv: Sequence[str]) -> str | None:
    """Ask OpenMP threads to sleep, not spin, while they wait, unless the command trains.

    Set before torch is imported (its OpenMP runtime reads ``OMP_WAIT_POLICY``
    once, at start-up) and only when the user has not set it. A spinning thread
    holds its core for a while after each parallel region; beside RDKit worker
    processes, another job or a second torch thread that is itself waiting, it
    takes the CPU they need. Training on an otherwise idle machine keeps the
    default, because there a spinning thread starts the next region sooner.
    Returns the policy it set, or ``None`` when it left the environment alone.
    """
    words = [a for a in argv if not a.startswith("-")]
    if "OMP_WAIT_POLICY" in os.environ or "torch" in sys.modules:
        return None
    if any(tuple(words[: len(c)]) == c for c in SPINNING_COMMANDS):
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"
