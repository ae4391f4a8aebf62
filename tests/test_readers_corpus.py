"""The reader test corpus (tests/data/corpus, made by make_corpus.py): every file either reads what is
valid and counts each skipped record exactly, or fails with a one-line DataError; --strict names the
first bad line; the rejects CSV holds every skipped record."""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

import pytest

from molgen.datasets import read_molecules, readers
from molgen.errors import DataError

CORPUS = Path(__file__).parent / "data" / "corpus"

PLAIN_KEPT = ["CCO", "c1ccccc1", "N#N", "[Cl-].[Na+]"]
PLAIN_SKIPPED = {"parse": 2, "sanitize": 1}
PLAIN_REJECTS = [(4, "C1CC", "parse"), (7, "C(C)(C)(C)(C)C", "sanitize"), (9, "xyz", "parse")]
QUOTED_KEPT = ["CCO", "c1ccccc1", "c1ccncc1", "CC(=O)O"]
QUOTED_REJECTS = [
    (4, '3,"unterminated quote,c1ccncc1,0.3', "missing_column"),
    (6, "5,short_row", "missing_column"),
    (8, "", "empty"),
    (10, "C1CC", "parse"),
]

# file -> (SMILES column, records read, kept molecules, rejects as (line, text, reason))
READABLE = {
    # Same records with LF, BOM + CRLF, lone-CR (old Mac) endings, no final newline, gzip named .txt:
    # identical results, line numbers included.
    "plain.smi": (None, 7, PLAIN_KEPT, PLAIN_REJECTS),
    "windows.smi": (None, 7, PLAIN_KEPT, PLAIN_REJECTS),
    "old_mac.smi": (None, 7, PLAIN_KEPT, PLAIN_REJECTS),
    "no_final_newline.smi": (None, 7, PLAIN_KEPT, PLAIN_REJECTS),
    "gzip_without_suffix.txt": (None, 7, PLAIN_KEPT, PLAIN_REJECTS),
    # Quoted fields with commas and doubled quotes, an unterminated quote that must not swallow the
    # next lines, a short row, a row of empty cells (blank), an empty SMILES cell; plain and gzipped.
    "quoted.csv": ("smiles", 8, QUOTED_KEPT, QUOTED_REJECTS),
    "quoted.csv.gz": ("smiles", 8, QUOTED_KEPT, QUOTED_REJECTS),
    "noheader.csv": (None, 4, ["CCO", "c1ccccc1", "CCO"], [(3, "C1CC", "parse")]),
    "noheader.tsv": (None, 4, ["CCO", "N#N", "O=C=O"], [(4, "C1CC", "parse")]),
    "header.tsv": ("smiles", 4, ["O", "C", "N"], [(4, "", "empty")]),
    "utf16.tsv": ("smiles", 3, ["CCO", "c1ccccc1"], [(3, "C1CC", "parse")]),
    # Bad bytes in the name column cost nothing; in the SMILES column they are an "encoding" reject.
    "latin1.csv": ("smiles", 4, ["CCO", "CCN"], [(3, "C\ufffdC", "encoding"), (5, "\ufffd\ufffd", "encoding")]),
    # RDKit would read "\x00CCN" as CCN; a NUL is never part of a molecule.
    "nul_bytes.smi": (None, 4, ["CCO", "N#N"], [(2, "CC\x00O", "parse"), (3, "\x00CCN", "parse")]),
}

UNUSABLE = {
    "empty.smi": "is empty",
    "empty.csv.gz": "is empty",
    "blank_lines_only.smi": "is empty",
    "header_only.csv": "header but no records",
}


def _counts(rejects: list[tuple[int, str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, _, reason in rejects:
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _read_rejects_csv(path: Path) -> list[tuple[int, str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["line", "text", "reason"]
    return [(int(line), text, reason) for line, text, reason in rows[1:]]


@pytest.mark.parametrize("name", sorted(READABLE))
def test_corpus_file_counts_every_record(name: str, tmp_path: Path) -> None:
    column, n_read, kept, rejects = READABLE[name]
    result = read_molecules(CORPUS / name, n_jobs=1, rejects_to=tmp_path / "rejects.csv")
    assert result.column == column
    assert result.smiles == kept
    assert result.rejects == rejects
    assert result.skipped == _counts(rejects)
    assert result.n_read == n_read == len(kept) + len(rejects)
    assert not result.truncated
    assert _read_rejects_csv(tmp_path / "rejects.csv") == rejects
    summary = result.summary()
    assert "\n" not in summary and f"read {n_read} records, kept {len(kept)}, skipped {len(rejects)}" in summary


@pytest.mark.parametrize("name", sorted(READABLE))
def test_strict_stops_at_the_first_bad_line_and_names_it(name: str, tmp_path: Path) -> None:
    line, _, reason = READABLE[name][3][0]
    with pytest.raises(DataError, match=rf"{name}, line {line}: {reason} ") as info:
        read_molecules(CORPUS / name, strict=True, n_jobs=1, rejects_to=tmp_path / "rejects.csv")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "rejects.csv").exists()  # an aborted read leaves no rejects file


@pytest.mark.parametrize("name", sorted(UNUSABLE))
def test_unusable_corpus_files_give_one_line_errors(name: str) -> None:
    with pytest.raises(DataError, match=UNUSABLE[name]) as info:
        read_molecules(CORPUS / name)
    assert "\n" not in str(info.value)


def test_binary_file_is_counted_not_crashed_on() -> None:
    result = read_molecules(CORPUS / "binary.smi", n_jobs=1)
    assert result.smiles == []
    assert result.n_read == result.n_skipped == len(result.rejects) > 0
    assert set(result.skipped) <= {"encoding", "parse", "sanitize", "empty", "too_long"}


def test_truncated_gzip_keeps_every_complete_line_before_the_damage() -> None:
    path = CORPUS / "truncated.smi.gz"
    # What zlib can recover, independently of the reader.
    raw = path.read_bytes()
    recovered = zlib.decompressobj(wbits=31).decompress(raw)
    complete = recovered[: recovered.rfind(b"\n") + 1].decode().splitlines()
    with pytest.raises(EOFError):
        gzip.decompress(raw)
    result = read_molecules(path, n_jobs=1, canonicalize=False)
    assert result.truncated and "truncated gzip" in result.summary()
    assert result.skipped == {}
    assert result.n_read == len(complete) == 988  # every complete line zlib can recover, nothing more
    assert result.smiles == [line.split()[0] for line in complete]


def test_long_lines(tmp_path: Path) -> None:
    huge = "C" * (readers.MAX_LINE_BYTES + 10)
    long_valid = "C" * 900  # under the guard's max_atoms=1000
    path = tmp_path / "long.smi"
    path.write_text(f"CCO\n{huge}\n{long_valid} polymer\nN#N\n" + "O" * (readers.MAX_LINE_BYTES * 3))
    result = read_molecules(path, n_jobs=1)
    assert result.smiles == ["CCO", long_valid, "N#N"]  # a long but valid molecule is kept
    assert result.skipped == {"too_long": 2}
    assert [(line, reason) for line, _, reason in result.rejects] == [(2, "too_long"), (5, "too_long")]
    assert all(len(text) <= 1000 for _, text, _ in result.rejects)  # reports never hold a megabyte line
    assert read_molecules(path, n_jobs=1, max_length=100).skipped == {"too_long": 3}


def test_rejects_file_holds_every_reject_beyond_the_kept_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readers, "MAX_REJECTS_KEPT", 2)
    path = tmp_path / "many_bad.smi"
    path.write_text("".join("C1CC\n" if i % 3 else "CCO\n" for i in range(30)))
    result = read_molecules(path, n_jobs=1, rejects_to=tmp_path / "rejects.csv")
    assert result.skipped == {"parse": 20} and len(result.rejects) == 2 and len(result.smiles) == 10
    written = _read_rejects_csv(tmp_path / "rejects.csv")
    assert [line for line, _, _ in written] == [i + 1 for i in range(30) if i % 3]


def test_rejects_file_for_a_clean_file_is_just_the_header(tmp_path: Path) -> None:
    path = tmp_path / "clean.smi"
    path.write_text("CCO\nN#N\n")
    read_molecules(path, rejects_to=tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text() == "line,text,reason\n"


def test_generated_samples_reader_counts_every_line_and_survives_damage() -> None:
    """``benchmark --generated`` counts every line as a sample; damaged lines are invalid samples."""
    from molgen.metrics import read_smiles_file

    plain = read_smiles_file(CORPUS / "plain.smi")
    assert plain == ["CCO", "c1ccccc1", "", "C1CC", "", "N#N", "C(C)(C)(C)(C)C", "[Na+].[Cl-]", "xyz"]
    for name in ("windows.smi", "old_mac.smi", "gzip_without_suffix.txt"):
        assert read_smiles_file(CORPUS / name) == plain, name  # no BOM glued to the first sample
    assert read_smiles_file(CORPUS / "latin1.csv") == ["CCO", "C\ufffdC", "CCN", "\ufffd\ufffd"]
    with pytest.raises(DataError, match="truncated gzip"):
        read_smiles_file(CORPUS / "truncated.smi.gz")
