"""Property-based tests: random text and bytes thrown at the parsers, tokenizers, readers and checkpoint
loader. Each may refuse its input only with molgen's own one-line errors, never crash; readers count
every record exactly and drop nothing valid."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from molgen.chem import FAILURE_REASONS, canonical_smiles, parse_smiles, try_parse
from molgen.datasets import read_molecules
from molgen.datasets.readers import read_lines
from molgen.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    InvalidSmilesError,
    MolgenError,
)
from molgen.optimize import parse_objective
from molgen.optimize.constraints import Constraint
from molgen.tokenizers import SelfiesTokenizer, SmilesTokenizer
from molgen.utils.checkpoint import load_checkpoint, save_checkpoint

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that is mostly SMILES-like (so that some of it parses) with anything else mixed in.
SMILES_CHARS = "CNOSPFIBrcnosp()[]=#-+@/\\%.0123456789H*:"
smiles_like = st.text(alphabet=SMILES_CHARS, max_size=40)
any_text = st.one_of(smiles_like, st.text(max_size=40))
VALID = ["CCO", "c1ccccc1", "N#N", "CC(=O)O", "[Na+].[Cl-]", "C[C@@H](N)C(=O)O", "O=C=O", "Clc1ccccc1", "C1CCNCC1"]


@FAST
@given(any_text)
def test_try_parse_never_raises(text: str) -> None:
    mol, reason = try_parse(text)
    assert (mol is None) != (reason is None)
    assert reason is None or reason in FAILURE_REASONS


@FAST
@given(any_text)
def test_parse_smiles_raises_only_invalid_smiles_error(text: str) -> None:
    try:
        parse_smiles(text)
    except InvalidSmilesError as exc:
        assert "\n" not in str(exc)


@FAST
@given(any_text)
def test_smiles_tokenizer_is_lossless_or_refuses(text: str) -> None:
    try:
        tokens = SmilesTokenizer().tokenize(text)
    except InvalidSmilesError:
        return
    assert "".join(tokens) == text


@FAST
@given(any_text)
@example("N00")  # a ring bond from an atom to itself: selfies raised IndexError
def test_selfies_tokenizer_round_trips_what_it_accepts(text: str) -> None:
    tok = SelfiesTokenizer()
    try:
        tokens = tok.tokenize(text)
    except InvalidSmilesError:
        return
    decoded = tok.detokenize(tokens)
    mol, _ = try_parse(text)
    if mol is not None and decoded:
        # SELFIES may drop what violates its valence rules, but a valid molecule comes back as itself.
        assert canonical_smiles(parse_smiles(decoded)) == canonical_smiles(mol)


@FAST
@given(st.lists(st.one_of(st.sampled_from(["[C]", "[=C]", "[Ring1]", "[Branch1]", "[O]", "[#N]", "[nop]"]), st.text(max_size=6)), max_size=12))
def test_selfies_detokenize_of_random_symbols_refuses_cleanly(symbols: list[str]) -> None:
    try:
        assert isinstance(SelfiesTokenizer().detokenize(symbols), str)
    except InvalidSmilesError:
        pass


@FAST
@given(st.text(alphabet=st.characters(blacklist_characters=":"), max_size=30))
def test_objective_and_constraint_parsers_refuse_with_one_line(text: str) -> None:
    # No ":" here: "module:function" would (by design) import the named module.
    for parse in (parse_objective, Constraint.parse):
        try:
            parse(text)
        except (ConfigError, InvalidSmilesError) as exc:
            assert "\n" not in str(exc)


@FILES
@given(st.binary(max_size=600), st.sampled_from(["x.smi", "x.csv", "x.tsv", "x.txt", "x.csv.gz"]), st.booleans())
def test_readers_on_random_bytes_count_or_refuse(data: bytes, name: str, gzipped: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
        assert isinstance(read_lines(path), list)
        try:
            result = read_molecules(path, n_jobs=1, rejects_to=Path(folder) / "rejects.csv")
        except DataError as exc:
            assert "\n" not in str(exc)
            return
        assert result.n_read == len(result.smiles) + result.n_skipped
        assert len(result.rejects) == result.n_skipped
        with open(Path(folder) / "rejects.csv", newline="", encoding="utf-8") as fh:
            assert len(list(csv.reader(fh))) == result.n_skipped + 1
        assert all(try_parse(s)[0] is not None for s in result.smiles)


# A garbage line: "!" is never part of a SMILES, the rest is anything without line breaks.
garbage = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Zl", "Zp"], blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85"), max_size=20).map(lambda s: "!" + s)


@FILES
@given(
    st.lists(st.one_of(st.sampled_from(VALID).map(lambda s: ("valid", s)), garbage.map(lambda s: ("bad", s)), st.just(("blank", ""))), max_size=30),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from(["smi", "csv", "tsv"]),
    st.booleans(),
    st.booleans(),
)
def test_readers_keep_every_valid_molecule_and_count_every_bad_line(rows, newline: str, kind: str, bom: bool, gzipped: bool) -> None:
    records = [(k, s) for k, s in rows if k != "blank"]
    if not any(k == "valid" for k, _ in records):
        records.append(("valid", "CCO"))
        rows = [*rows, ("valid", "CCO")]
    buf = io.StringIO()
    if kind == "smi":
        for k, s in rows:
            buf.write((s.split()[0] if k == "bad" and s.split() else s).replace(" ", "") + (" name" if k == "valid" else "") + newline)
        records = [(k, (s.split()[0] if s.split() else s).replace(" ", "")) if k == "bad" else (k, s) for k, s in records]
    else:
        writer = csv.writer(buf, delimiter="," if kind == "csv" else "\t", lineterminator=newline)
        writer.writerow(["id", "smiles", "note"])
        for i, (k, s) in enumerate(rows):
            if k == "blank":
                buf.write(newline)
            else:
                writer.writerow([i, s, 'a "quoted", note'])
    data = (("\ufeff" if bom else "") + buf.getvalue()).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"mols.{kind}"
        path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
        result = read_molecules(path, n_jobs=1)
    expected = [canonical_smiles(parse_smiles(s)) for k, s in records if k == "valid"]
    n_bad = sum(1 for k, s in records if k == "bad" and s.strip())
    assert result.smiles == expected
    assert result.n_skipped == n_bad and set(result.skipped) <= {"parse", "empty"}
    assert result.n_read == len(expected) + n_bad


def _checkpoint_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.safetensors"
        save_checkpoint(path, {"w": torch.arange(12, dtype=torch.float32)}, {"kind": "test", "n": 1})
        return path.read_bytes()


CHECKPOINT = _checkpoint_bytes()


@FILES
@given(st.one_of(st.binary(max_size=300), st.lists(st.tuples(st.integers(0, len(CHECKPOINT) - 1), st.integers(0, 255)), min_size=1, max_size=4)))
def test_checkpoint_loader_refuses_damage_with_checkpoint_error(damage) -> None:
    if isinstance(damage, bytes):
        data = damage
    else:
        blob = bytearray(CHECKPOINT)
        for position, value in damage:
            blob[position] = value
        data = bytes(blob)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.safetensors"
        path.write_bytes(data)
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as exc:
            assert "\n" not in str(exc)
            return
    # Loaded: only possible when the damage changed nothing that matters.
    assert data == CHECKPOINT or (torch.equal(tensors["w"], torch.arange(12, dtype=torch.float32)) and meta["n"] == 1)
    assert isinstance(meta, dict) and not isinstance(meta, MolgenError)


def test_header_damage_that_stays_valid_json_is_caught() -> None:
    """Found by the property test above: a renamed tensor kept the tensor-bytes checksum valid."""
    header_len = int.from_bytes(CHECKPOINT[:8], "little")
    header = CHECKPOINT[8 : 8 + header_len]
    for old, new in ((b'"w"', b'"v"'), (b'\\"n\\": 1', b'\\"n\\": 7')):
        assert header.count(old) == 1, old
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "c.safetensors"
            path.write_bytes(CHECKPOINT[:8] + header.replace(old, new) + CHECKPOINT[8 + header_len :])
            try:
                load_checkpoint(path)
            except CheckpointError as exc:
                assert "corrupted header" in str(exc)
            else:
                raise AssertionError(f"{old!r} -> {new!r} loaded")
