"""Read molecule files robustly; write them atomically.

:func:`read_molecules` accepts the formats molecules usually arrive in:

* ``.smi`` / ``.txt`` (and any other suffix): one SMILES per line, optionally
  followed by whitespace-separated columns (a name or id), optionally with a
  header line whose first field is ``smiles`` (any case). A file whose first
  field contains a comma is read as CSV, since SMILES never contain commas;
* ``.csv`` / ``.tsv``: a header row, then records; the SMILES column is
  ``smiles_column`` or, when not given, a column with a SMILES-like name
  (``smiles``, ``canonical_smiles``, ``mol``, ...), else the column whose
  first rows parse best as molecules. A file whose first row already parses
  as molecules in that column is taken to have no header;
* any of them gzipped (detected from the magic bytes, not the suffix).

Quoted CSV fields may hold the delimiter and doubled quotes but not line
breaks (SMILES never need them): each physical line is one record, so a stray
quote costs only its own line.

Files are streamed and validated in chunks (in a process pool for large
files), so memory holds the kept molecules, not the raw text. Bad records are
skipped and counted by reason: the :data:`molgen.chem.FAILURE_REASONS` of
:func:`molgen.chem.try_parse`, plus ``"encoding"`` (the SMILES field holds
bytes that are not UTF-8; it is decoded with replacement characters for the
report, and damage in other columns is ignored), ``"too_long"`` (longer than
``max_length`` characters, or a physical line over :data:`MAX_LINE_BYTES`,
which is never held in memory whole) and ``"missing_column"`` (a delimited
row too short to have the SMILES column). Size limits (``"too_large"``,
``"too_deep"``, ...) are those of :mod:`molgen.chem.guard`; a record that
kills or stalls a worker process is ``"crashed"`` or ``"timeout"``. Blank lines are not records and are
not counted. A truncated gzip is read up to the damage and flagged in
:meth:`ReadResult.summary`. Every reject can be written, with its line number,
text and reason, to a CSV (``rejects_to``; the CLI's ``--rejects``).

Example::

    >>> result = read_molecules("molecules.csv", max_length=100)
    >>> print(result.summary())
    molecules.csv: read 1000 records, kept 996, skipped 4 (parse: 3, too_long: 1)
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gzip
import io
import itertools
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from rdkit import Chem

from molgen.chem import canonical_smiles, try_parse
from molgen.chem._pool import DEFAULT_THRESHOLD, pmap
from molgen.chem.standardization import (
    StandardizePolicy,
    StandardizeReport,
    standardize_mol,
)
from molgen.datasets.tables import (  # SMILES_COLUMN_NAMES, MAX_LINE_BYTES: re-exported
    MAX_LINE_BYTES,
    SMILES_COLUMN_NAMES,
    _check_readable,
    _data_records,
    _format_suffix,
    _LineSource,
)
from molgen.errors import DataError
from molgen.utils.io import atomic_output

__all__ = ["ReadResult", "read_molecules", "read_lines", "write_smiles", "SMILES_COLUMN_NAMES", "MAX_LINE_BYTES"]

#: Records validated per batch: big enough to amortise a process pool start,
#: small enough that the raw text of one batch is negligible in memory.
_CHUNK = 50_000
#: Chunks smaller than this are validated serially (pool start-up would dominate).
_PARALLEL_MIN = DEFAULT_THRESHOLD
#: Cap on stored reject examples; the per-reason counts stay exact beyond it
#: (and ``rejects_to`` receives every reject).
MAX_REJECTS_KEPT = 10_000
#: Characters of a rejected record kept for reports.
_REJECT_TEXT_CHARS = 1000



@dataclass
class ReadResult:
    """Outcome of :func:`read_molecules`.

    ``n_read`` counts data records (header and blank lines excluded), so
    ``n_read == len(smiles) + sum(skipped.values())``. ``rejects`` holds
    ``(line_no, text, reason)`` for the first :data:`MAX_REJECTS_KEPT` bad
    records, with 1-based physical line numbers.
    """

    path: Path
    smiles: list[str] = field(default_factory=list)
    n_read: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    column: str | None = None
    truncated: bool = False
    # Changes made by the input standardisation policy (when one was applied).
    standardized: StandardizeReport | None = None
    _sink: Any = field(default=None, repr=False, compare=False)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One line: counts read/kept/skipped by reason, and damage if any."""
        text = f"{self.path.name}: read {self.n_read} records, kept {len(self.smiles)}, skipped {self.n_skipped}"
        if self.skipped:
            text += " (" + ", ".join(f"{r}: {n}" for r, n in sorted(self.skipped.items())) + ")"
        if self.truncated:
            text += "; truncated gzip: the file ends early, only its readable part was used"
        return text

    def _reject(self, line_no: int, text: str, reason: str, strict: bool) -> None:
        if strict:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise DataError(
                f"{self.path}, line {line_no}: {reason} ({shown!r}); "
                "fix or remove the line, or read without strict mode to skip bad lines"
            )
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(text) > _REJECT_TEXT_CHARS:
            text = text[: _REJECT_TEXT_CHARS - 3] + "..."
        if len(self.rejects) < MAX_REJECTS_KEPT:
            self.rejects.append((line_no, text, reason))
        if self._sink is not None:
            self._sink.writerow((line_no, text, reason))


def read_molecules(
    path: str | os.PathLike[str],
    smiles_column: str | None = None,
    strict: bool = False,
    max_length: int | None = None,
    canonicalize: bool = True,
    n_jobs: int | None = None,
    rejects_to: str | os.PathLike[str] | None = None,
    standardize: StandardizePolicy | None = None,
) -> ReadResult:
    """Read, validate and (by default) canonicalize the molecules in ``path``.

    Args:
        path: a ``.smi``/``.txt``/``.csv``/``.tsv`` file, optionally gzipped.
        smiles_column: header name of the SMILES column; guessed when ``None``.
        strict: raise :class:`DataError` at the first bad record instead of
            skipping it.
        max_length: skip molecules whose (canonical) SMILES has more
            characters than this (reason ``"too_long"``).
        canonicalize: return RDKit canonical SMILES; otherwise the input text
            of each valid record.
        n_jobs: worker processes for validation (``None``: all CPUs).
        rejects_to: write every skipped record to this CSV (columns ``line,
            text, reason``; header only when nothing was skipped). Written
            atomically, and only when the read succeeds.
        standardize: apply this input policy (:mod:`molgen.chem.standardization`)
            to every valid molecule and count its changes in ``result.standardized``;
            the output is then the policy's canonical SMILES.

    Raises:
        DataError: missing path, a directory, an empty file, no SMILES column,
            or (``strict``) the first bad record or a truncated gzip.
    """
    path = Path(path)
    _check_readable(path)
    result = ReadResult(path=path)
    with contextlib.ExitStack() as stack:
        if rejects_to is not None:
            sink = stack.enter_context(atomic_output(rejects_to, "w"))
            result._sink = csv.writer(sink, lineterminator="\n")
            result._sink.writerow(("line", "text", "reason"))
        source = stack.enter_context(_LineSource(path))
        records, column = _data_records(source, path, smiles_column)
        result.column = column
        check = functools.partial(_canonical_or_reason, canonicalize=canonicalize)
        if standardize is not None:
            check = functools.partial(_standardized_or_reason, policy=standardize)
            result.standardized = StandardizeReport()
        for chunk in _batched(records, _CHUNK):
            _process_chunk(chunk, check, result, strict, max_length, n_jobs)
        result.truncated = source.truncated
        if result.truncated and strict:
            raise DataError(f"{path} is a truncated gzip (it ends after line {source.line_no}); re-download or re-create the file")
        if result.n_read == 0:
            what = "has a header but no records" if column is not None else "is empty"
            if result.truncated:
                what = "is a truncated gzip with no readable records"
            raise DataError(f"{path} {what}; give a file with one SMILES per line or a CSV with a SMILES column")
    result._sink = None
    return result


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Every physical line of a text file, for callers that count each line (e.g. generated samples).

    Decodes like :func:`read_molecules` (gzip by content, BOM, LF/CRLF/CR,
    UTF-16 with a BOM); bytes that are not UTF-8 become U+FFFD, so such a line
    is never a valid molecule; a line over :data:`MAX_LINE_BYTES` becomes
    ``""``. Blank lines are kept as ``""``.

    Raises:
        DataError: missing or unreadable path, a directory, or a truncated gzip.
    """
    path = Path(path)
    _check_readable(path)
    with _LineSource(path) as source:
        lines = ["" if flag else text for _, text, flag in source]
    if source.truncated:
        raise DataError(f"{path} is a truncated gzip (it ends after line {source.line_no}); re-download or re-create the file")
    return lines


def write_smiles(
    path: str | os.PathLike[str],
    smiles: Sequence[str],
    extra_columns: Mapping[str, Sequence[object]] | None = None,
) -> Path:
    """Write molecules to ``path`` atomically and return the path.

    ``.csv`` (``.tsv``) gets a header ``smiles,<extra names>``; any other
    suffix gets one SMILES per line, extra columns tab-separated after it and
    no header. A trailing ``.gz`` compresses the output. The file is written
    to a temporary file in the same folder, flushed, fsynced and renamed, so
    readers never see a half-written file.
    """
    path = Path(path)
    extra = dict(extra_columns or {})
    for name, values in extra.items():
        if len(values) != len(smiles):
            raise DataError(f"column {name!r} has {len(values)} values for {len(smiles)} molecules; pass equal-length columns")
    suffix = _format_suffix(path)
    with atomic_output(path, "wb") as raw:
        if path.suffix == ".gz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                _write_rows(gz, suffix, smiles, extra)
        else:
            _write_rows(raw, suffix, smiles, extra)
    return path


def _batched(items: Iterator[tuple[int, str, str | None]], size: int) -> Iterator[list[tuple[int, str, str | None]]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


def _canonical_or_reason(text: str, canonicalize: bool) -> tuple[str | None, str | None]:
    """``(smiles_to_keep, None)`` for a valid molecule, ``(None, reason)`` otherwise."""
    mol, reason = try_parse(text)
    if mol is None:
        return None, reason
    return (canonical_smiles(mol) if canonicalize else text), None


def _worker_failure(text: str, reason: str) -> tuple[None, str]:
    """The outcome of a record whose worker process died (``"crashed"``) or timed out (``"timeout"``)."""
    return None, reason


def _standardized_or_reason(text: str, policy: StandardizePolicy) -> tuple[str | None, str | None, list[str]]:
    """As :func:`_canonical_or_reason`, after the standardisation policy, with the changes it made."""
    mol, reason = try_parse(text)
    if mol is None:
        return None, reason, []
    out, changes = standardize_mol(mol, policy)
    return Chem.MolToSmiles(out, isomericSmiles=policy.isomeric), None, changes


def _process_chunk(
    chunk: list[tuple[int, str, str | None]],
    check: Callable[[str], tuple[str | None, str | None]],
    result: ReadResult,
    strict: bool,
    max_length: int | None,
    n_jobs: int | None,
) -> None:
    texts = [text for _, text, flag in chunk if flag is None]
    outcomes = iter(pmap(check, texts, n_jobs=n_jobs, threshold=_PARALLEL_MIN, on_failure=_worker_failure))
    for line_no, text, flag in chunk:
        result.n_read += 1
        if flag is not None:
            result._reject(line_no, text, flag, strict)
            continue
        kept, reason, *changes = next(outcomes)
        if kept is not None and max_length is not None and len(kept) > max_length:
            kept, reason = None, "too_long"
        if kept is None:
            result._reject(line_no, text, reason or "parse", strict)
        else:
            result.smiles.append(kept)
            if result.standardized is not None:
                result.standardized.add(changes[0])


# -- writing internals ---------------------------------------------------------


def _write_rows(sink: BinaryIO, suffix: str, smiles: Sequence[str], extra: dict[str, Sequence[object]]) -> None:
    text = io.TextIOWrapper(sink, encoding="utf-8", newline="")
    columns = list(extra.values())
    if suffix in (".csv", ".tsv"):
        writer = csv.writer(text, delimiter="," if suffix == ".csv" else "\t", lineterminator="\n")
        writer.writerow(["smiles", *extra])
        writer.writerows([s, *(col[i] for col in columns)] for i, s in enumerate(smiles))
    else:
        for i, s in enumerate(smiles):
            text.write("\t".join([s, *(str(col[i]) for col in columns)]) + "\n")
    text.flush()
    # Detach so that dropping the wrapper does not close the caller's file.
    text.detach()
