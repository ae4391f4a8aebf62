"""Small shared utilities: devices, seeds, atomic file output, run-folder locks."""

from __future__ import annotations

from molgen.utils.io import atomic_output, atomic_write_text, RunLock
from molgen.utils.runtime import resolve_device, seed_everything, environment_info

__all__ = [
    "atomic_output",
    "atomic_write_text",
    "RunLock",
    "resolve_device",
    "seed_everything",
    "environment_info",
]
