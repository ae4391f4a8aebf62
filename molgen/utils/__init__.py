"""Small shared utilities: devices, seeds, atomic file output, run-folder locks."""

from __future__ import annotations

from molgen.utils.io import RunLock, atomic_output, atomic_write_text
from molgen.utils.runtime import environment_info, resolve_device, seed_everything

__all__ = [
    "atomic_output",
    "atomic_write_text",
    "RunLock",
    "resolve_device",
    "seed_everything",
    "environment_info",
]
