"""Streaming ``molgen sample``'s molecules to disk: optional property columns, Ctrl-C keeps what was drawn.

The file is written under a temporary name and renamed when complete, so
``-o`` never names a half-written file. On Ctrl-C the molecules drawn so far
are kept, in a file beside the output named ``<stem>.partial<suffix>``
(renamed atomically as well), and the caller says so in one line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from molgen.generate.table import PROPERTY_COLUMNS, format_row
from molgen.utils.io import DiskFullError

__all__ = ["SampleWriteResult", "write_samples", "partial_path", "novelty_set"]


@dataclass
class SampleWriteResult:
    """What was drawn and written; ``path`` is the output, or the partial file after an interruption."""

    path: Path
    drawn: int = 0
    valid: int = 0
    distinct: int = 0
    written: int = 0
    interrupted: bool = False
    first: list[tuple[str, tuple | None]] = field(default_factory=list)  # the first molecules written, for a grid


def novelty_set(vae) -> set[str] | None:
    """The model's training molecules as a set, for the ``novel`` column (None when not available here)."""
    from molgen.errors import DataError
    from molgen.vae import training_smiles

    try:
        # A column is not worth a 400 MB download on first use: only a set already here counts.
        train = training_smiles(vae, fetch=False)
    except DataError:  # e.g. the MOSES training set is not cached here (molgen data moses); sampling goes on without
        return None
    return None if train is None else set(train)


def partial_path(output: Path) -> Path:
    """Where an interrupted run keeps its molecules: ``samples.csv`` -> ``samples.partial.csv``."""
    return output.with_name(f"{output.stem}.partial{output.suffix}")


def write_samples(
    chunks: Iterable[list],
    output: Path,
    unique: bool = False,
    properties: bool = False,
    train: set[str] | None = None,
    progress=None,
    keep_first: int = 30,
) -> SampleWriteResult:
    """Write the valid samples of ``chunks`` (lists of SMILES, or ``(smiles, values)`` with ``properties``).

    A ``.smi``/``.txt`` output gets one SMILES a line; any other a CSV with a header, the property
    columns with ``properties``, and ``novel`` when ``train`` (canonical SMILES) is given.
    """
    csv = output.suffix not in (".smi", ".txt")
    columns = ["smiles", *(PROPERTY_COLUMNS if properties else ()), *(["novel"] if properties and train is not None else [])]
    result, seen = SampleWriteResult(output), set()
    staging = partial_path(output)
    try:
        _write(chunks, staging, csv, columns, unique, properties, train, progress, keep_first, result, seen)
    except DiskFullError as exc:  # the user asked for output, not for our staging name
        raise DiskFullError(str(exc).replace(str(staging), str(output))) from None
    result.distinct = len(seen)
    result.written = len(seen) if unique else result.valid
    if result.interrupted:
        result.path = staging
    else:
        os.replace(staging, output)
    return result


def _write(chunks, staging: Path, csv: bool, columns, unique, properties, train, progress, keep_first, result, seen) -> None:
    from molgen.utils.io import atomic_output

    with atomic_output(staging, "w") as fh:
        if csv:
            fh.write(",".join(columns) + "\n")
        try:
            for chunk in chunks:
                for item in chunk:
                    smi, values = item if properties else (item, None)
                    if smi is None:
                        continue
                    result.valid += 1
                    if smi in seen and unique:
                        continue
                    seen.add(smi)
                    if csv and properties:
                        fh.write(format_row(smi, values, None if train is None else smi not in train))
                    else:
                        fh.write(smi + "\n")
                    if len(result.first) < keep_first:
                        result.first.append((smi, values))
                result.drawn += len(chunk)
                if progress is not None:
                    progress.advance(len(chunk), valid=result.valid / max(1, result.drawn))
        except KeyboardInterrupt:
            result.interrupted = True
