"""The file layer of the molecule readers: physical lines of a (gzipped, UTF-8 or UTF-16) file, and its columns.

:class:`_LineSource` decodes lines robustly (BOMs, LF/CRLF/CR, damaged bytes,
over-long lines never held whole); :func:`_data_records` finds the delimiter,
the header and the SMILES column (by name, else by content) and yields
``(line_no, smiles_text, flag)`` for :func:`molgen.datasets.readers.read_molecules`,
which validates them. See that module's docstring for the formats.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from molgen.chem import try_parse
from molgen.errors import DataError

__all__ = ["SMILES_COLUMN_NAMES", "MAX_LINE_BYTES"]

#: Header names recognised as the SMILES column, in order of preference.
SMILES_COLUMN_NAMES: tuple[str, ...] = (
    "smiles",
    "canonical_smiles",
    "isomeric_smiles",
    "can_smiles",
    "smi",
    "mol",
    "molecule",
    "molecules",
    "structure",
)

#: Rows inspected when guessing the SMILES column from content.
_SNIFF_ROWS = 20
#: A physical line longer than this (1 MiB) is a ``"too_long"`` reject; only its
#: start is kept for the report. Far beyond any molecule, it bounds memory
#: when a binary file without line breaks is passed by mistake.
MAX_LINE_BYTES = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class _LineSource:
    """Decoded physical lines of a possibly gzipped file, each with a damage flag.

    Yields ``(line_no, text, flag)``: ``text`` without its line break (LF,
    CRLF and lone CR all end a line; a leading BOM is removed), decoded as
    UTF-8 with U+FFFD in place of undecodable bytes, or as UTF-16 when the
    file starts with a UTF-16 BOM (spreadsheet "Unicode text" exports);
    ``flag`` is ``None`` or ``"too_long"`` (a line over
    :data:`MAX_LINE_BYTES`: ``text`` is its start, the rest is read and
    dropped in bounded pieces).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line_no = 0
        self.truncated = False
        self._fh: BinaryIO | None = None
        self._text: io.TextIOWrapper | None = None

    def __enter__(self) -> _LineSource:
        with open(self.path, "rb") as probe:
            is_gzip = probe.read(2) == _GZIP_MAGIC
        self._fh = gzip.open(self.path, "rb") if is_gzip else open(self.path, "rb")
        try:
            start = self._fh.peek(2)[:2]
        except (EOFError, gzip.BadGzipFile, zlib.error):
            start = b""
        if start in _UTF16_BOMS:
            self._text = io.TextIOWrapper(self._fh, encoding="utf-16", errors="replace", newline=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._text is not None:
            self._text.close()
        elif self._fh is not None:
            self._fh.close()

    def __iter__(self) -> Iterator[tuple[int, str, str | None]]:
        assert self._fh is not None, "use _LineSource as a context manager"
        stream = self._text if self._text is not None else self._fh
        end = "\n" if self._text is not None else b"\n"
        while True:
            try:
                raw = stream.readline(MAX_LINE_BYTES + 1)
                flag = None
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(end):
                    flag = "too_long"
                    while (piece := stream.readline(MAX_LINE_BYTES)) and not piece.endswith(end):
                        pass
            except (EOFError, gzip.BadGzipFile, zlib.error):
                self.truncated = True
                return
            if not raw:
                return
            text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
            text = text.rstrip("\r\n")
            for piece in text.split("\r") if flag is None else [text]:
                self.line_no += 1
                if self.line_no == 1:
                    piece = piece.removeprefix("\ufeff")
                yield self.line_no, piece, flag


# (line_no, cells, flag, line): flag is None or a reject reason found before parsing.
_Record = tuple[int, list[str], "str | None", str]


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise DataError(f"molecule file {path} not found; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a directory; pass a .smi, .csv or .tsv file inside it")
    if not os.access(path, os.R_OK):
        raise DataError(f"molecule file {path} is not readable; check its permissions")


def _format_suffix(path: Path) -> str:
    """``.csv``, ``.tsv`` or ``""`` (whitespace-separated), ignoring a ``.gz``."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    suffix = Path(name).suffix.lower()
    return suffix if suffix in (".csv", ".tsv") else ""


def _split_line(text: str, delimiter: str | None) -> list[str]:
    """Cells of one physical line.

    Delimited lines are parsed one at a time, so quoted fields may hold the
    delimiter and doubled quotes but never a line break: an unterminated quote
    spoils only its own line instead of swallowing the rest of the file.
    """
    if delimiter is None:
        return text.split()
    if '"' not in text:
        return text.split(delimiter)
    return next(csv.reader([text], delimiter=delimiter), [])


def _records(lines: Iterable[tuple[int, str, str | None]], delimiter: str | None) -> Iterator[_Record]:
    """Non-blank records (a line of only delimiters and spaces is blank too)."""
    for line_no, text, flag in lines:
        if not text.strip() or (delimiter is not None and not text.replace(delimiter, "").strip()):
            continue
        yield line_no, _split_line(text, delimiter), flag, text


def _data_records(source: _LineSource, path: Path, smiles_column: str | None) -> tuple[Iterator[tuple[int, str, str | None]], str | None]:
    """Data records as ``(line_no, smiles_text, flag)`` and the column name."""
    lines = iter(source)
    leading: list[tuple[int, str, str | None]] = []
    for line in lines:
        leading.append(line)
        if line[1].strip():
            break
    delimiter = {".csv": ",", ".tsv": "\t"}.get(_format_suffix(path))
    if delimiter is not None:
        delimiter = _csv_delimiter(leading[-1][1] if leading else "", delimiter)
    first_field = leading[-1][1].split(maxsplit=1)[0] if leading and leading[-1][1].strip() else ""
    guessed = delimiter is None and "," in first_field and smiles_column is None
    if guessed:
        delimiter = ","
        # Kept until the guess is confirmed; dropped then, so the tee buffers nothing more.
        lines, plain = itertools.tee(itertools.chain(leading, lines))
        leading = []
    records = _records(itertools.chain(leading, lines), delimiter)
    head = list(itertools.islice(records, _SNIFF_ROWS + 1))
    if not head:
        if source.truncated:
            raise DataError(f"{path} is a truncated gzip with no readable records; re-download or re-create the file")
        raise DataError(f"{path} is empty; give a file with one SMILES per line or a CSV with a SMILES column")
    try:
        index, name, has_header = _choose_column(head, delimiter, smiles_column, path)
    except DataError:
        if not guessed:
            raise
        # Not comma-separated after all: a SMILES file whose first line holds a comma.
        delimiter = None
        records = _records(plain, None)
        head = list(itertools.islice(records, _SNIFF_ROWS + 1))
        index, name, has_header = _choose_column(head, None, None, path)
    finally:
        if guessed:
            del plain
    body = itertools.chain(head[1:] if has_header else head, records)
    return (_field(record, index) for record in body), name


def _csv_delimiter(first_line: str, expected: str) -> str:
    """The delimiter a CSV/TSV's first line uses: Excel writes ';' in many locales, and '.csv' files are often tab-separated.

    SMILES never hold ';' or a tab, so a first line with one of them and none of ``expected`` is split on it.
    """
    if expected in first_line:
        return expected
    for other in (";", "\t", ","):
        if other != expected and other in first_line:
            return other
    return expected


def _field(record: _Record, index: int) -> tuple[int, str, str | None]:
    """``(line_no, smiles_text, flag)`` for the SMILES column of one record."""
    line_no, cells, flag, line = record
    if index >= len(cells):
        return line_no, line.strip(), flag or "missing_column"
    text = cells[index].strip()
    if flag is None and "\ufffd" in text:
        flag = "encoding"
    return line_no, text, flag


def _choose_column(head: list[_Record], delimiter: str | None, smiles_column: str | None, path: Path) -> tuple[int, str | None, bool]:
    """``(column index, column name, first record is a header)``."""
    header = [c.strip() for c in head[0][1]]
    lowered = [h.lower() for h in header]
    if smiles_column is not None:
        if smiles_column in header:
            return header.index(smiles_column), smiles_column, True
        if smiles_column.lower() in lowered:
            index = lowered.index(smiles_column.lower())
            return index, header[index], True
        raise DataError(f"{path} has no column {smiles_column!r} (columns: {', '.join(header)}); pass one of those as the SMILES column")
    for name in SMILES_COLUMN_NAMES:
        if name in lowered:
            return lowered.index(name), header[lowered.index(name)], True
    named = [i for i, h in enumerate(lowered) if "smiles" in h]
    if named:
        return named[0], header[named[0]], True
    if delimiter is None:
        # Plain SMILES files carry the molecule first and have no header.
        return 0, None, False
    return _sniff_column(head, header, path)


def _sniff_column(head: list[_Record], header: list[str], path: Path) -> tuple[int, str | None, bool]:
    width = max(len(record[1]) for record in head)
    rows = [record[1] for record in head[1:]]
    scores = [sum(1 for cells in rows if i < len(cells) and try_parse(cells[i].strip())[0] is not None) for i in range(width)]
    best = max(range(width), key=lambda i: (scores[i], -i))
    header_parses = best < len(header) and try_parse(header[best])[0] is not None
    if scores[best] == 0 and not header_parses:
        raise DataError(
            f"no SMILES column found in {path} (columns: {', '.join(header)}); "
            "name the column 'smiles' or pass the SMILES column name explicitly"
        )
    if header_parses:
        return best, None, False
    return best, header[best] if best < len(header) else None, True
