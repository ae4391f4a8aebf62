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


def lazy_exports(package: str, exports: dict[str, str]) -> Any:
    """A module ``__getattr__`` (PEP 562) that imports ``exports[name]`` only when ``name`` is first used.

    Packages whose members need torch or scipy use it so that importing one
    light submodule (a reader, the command line's ``--help``) does not pay for
    the rest.
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


# runtime needs torch; loading it lazily keeps file readers and writers torch-free.
__getattr__ = lazy_exports(
    __name__,
    {
        name: "molgen.utils.runtime"
        for name in ("resolve_device", "seed_everything", "environment_info")
    },
)
