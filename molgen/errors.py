"""Domain errors.

Every error molgen raises on purpose derives from :class:`MolgenError`, and its
message is one line that names the problem and what to do about it. The CLI
prints such messages without a traceback.
"""

from __future__ import annotations

__all__ = [
    "MolgenError",
    "InvalidSmilesError",
    "DataError",
    "CheckpointError",
    "ConfigError",
    "DrawingUnavailableError",
    "WorkerCrashError",
]


class MolgenError(Exception):
    """Base class of the errors molgen raises deliberately."""


class InvalidSmilesError(MolgenError, ValueError):
    """A SMILES string could not be turned into a sanitized RDKit molecule.

    ``reason`` is a short machine-friendly tag (``"empty"``, ``"parse"``,
    ``"sanitize"``, ...), ``smiles`` the offending input.
    """

    def __init__(self, smiles: str, reason: str, detail: str = "") -> None:
        self.smiles = smiles
        self.reason = reason
        self.detail = detail
        shown = smiles if len(smiles) <= 80 else smiles[:77] + "..."
        msg = f"invalid SMILES {shown!r}: {reason}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class DataError(MolgenError, ValueError):
    """An input file is missing, empty, unreadable or has no usable column."""


class CheckpointError(MolgenError):
    """A checkpoint is missing, truncated, corrupted, foreign or from a newer format."""


class ConfigError(MolgenError, ValueError):
    """A configuration value or option is unknown or out of range."""


class DrawingUnavailableError(MolgenError, RuntimeError):
    """RDKit cannot draw molecules on this machine (its drawing code needs system libraries)."""


class WorkerCrashError(MolgenError, RuntimeError):
    """A worker process died (a signal from native code) or ran past its time limit on one input."""
