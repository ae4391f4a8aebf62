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


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> Any:
    """A module ``__getattr__`` (PEP 562) that imports each name's module only when the name is first used.

    ``modules`` maps a module to the names it provides. Packages whose members
    need torch or scipy use it so that importing one light submodule (a
    reader, the command line's ``--help``) does not pay for the rest.
    """
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in home:
            return getattr(importlib.import_module(home[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


# runtime needs torch; loading it lazily keeps file readers and writers torch-free.
__getattr__ = lazy_exports(__name__, {"molgen.utils.runtime": ("resolve_device", "seed_everything", "environment_info")})
