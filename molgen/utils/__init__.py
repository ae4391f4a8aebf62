"""Small shared utilities: devices, seeds, atomic file output, run-folder locks."""

from __future__ import annotations

import importlib
from typing import Any

from molgen.utils.io import RunLock, atomic_output, atomic_write_text

__all__ = [
    "atomic_output",
    "atomic_write_text",
    "RunLock",
    "resolve_device",
    "seed_everything",
    "environment_info",
]

_RUNTIME = ("resolve_device", "seed_everything", "environment_info")


def __getattr__(name: str) -> Any:
    # runtime needs torch; loading it lazily keeps file readers and writers torch-free.
    if name in _RUNTIME:
        return getattr(importlib.import_module("molgen.utils.runtime"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
