"""Both tokenizers on the full bracket-atom grammar: a user-style corpus and ZINC-250k with stereo and charges."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem, RDLogger

from molgen.chem.standardization import StandardizePolicy, standardize_mol
from molgen.errors import InvalidSmilesError
from molgen.tokenizers import SelfiesTokenizer, SmilesTokenizer

ROOT = Path(__file__).resolve().parents[1]
CORPUS = [line.split() for line in (ROOT / "tests" / "data" / "medchem_corpus.smi").read_text().splitlines() if line.strip()]
# Chirality classes SELFIES has no symbols for (metal complexes): refused with a clear error.
NON_TETRAHEDRAL = ("@SP", "@TB", "@OH")


def _canonical(smiles: str) -> str:
    return Chem.MolToSmiles(Chem.MolFromSmiles(smiles))


def _zinc(limit: int | None = None, seed: int = 0) -> list[str]:
    with gzip.open(ROOT / "data" / "zinc250k.smi.gz", "rt") as fh:
        smiles = [line.split()[0] for line in fh if line.strip()]
    if limit is None:
        return smiles
    return [smiles[i] for i in np.sort(np.random.default_rng(seed).choice(len(smiles), limit, replace=False))]


def _check_round_trips(smiles: list[str]) -> None:
    RDLogger.DisableLog("rdApp.*")
    regex, selfies = SmilesTokenizer(), SelfiesTokenizer()
    bad_regex = [s for s in smiles if regex.detokenize(regex.tokenize(s)) != s]
    bad_selfies = [s for s in smiles if _canonical(selfies.detokenize(selfies.tokenize(s))) != _canonical(s)]
    assert not bad_regex, bad_regex[:5]
    assert not bad_selfies, bad_selfies[:5]


def test_zinc_carries_stereo_and_charges():
    # The shipped ZINC file is the stereo/charged version, not a flattened copy.
    sample = _zinc(2000)
    assert sum("@" in s for s in sample) > 500
    assert sum("/" in s or "\\" in s for s in sample) > 20
    assert sum("+" in s or "-]" in s for s in sample) > 300


def test_round_trip_zinc_sample():
    _check_round_trips(_zinc(400, seed=1))


@pytest.mark.slow
def test_round_trip_all_of_zinc():
    smiles = _zinc()
    assert len(smiles) == 249_455
    _check_round_trips(smiles)


@pytest.mark.parametrize("smiles,name", CORPUS, ids=[name for _, name in CORPUS])
def test_regex_tokenizer_is_exact_on_the_corpus(smiles, name):
    tokens = SmilesTokenizer().tokenize(smiles)
    assert "".join(tokens) == smiles
    # Every bracket atom (isotope, chirality class, H count, charge, map) is one token.
    assert all(t.count("[") == t.count("]") <= 1 for t in tokens)


def test_regex_tokens_of_the_bracket_grammar():
    tokens = SmilesTokenizer().tokenize("[2H][C@@H]%10C[Pt@SP1]%(123)/C=C\\[NH3+]")
    assert tokens == ["[2H]", "[C@@H]", "%10", "C", "[Pt@SP1]", "%(123)", "/", "C", "=", "C", "\\", "[NH3+]"]


@pytest.mark.parametrize("smiles,name", CORPUS, ids=[name for _, name in CORPUS])
def test_selfies_round_trip_on_the_corpus(smiles, name):
    tok = SelfiesTokenizer()
    if any(c in smiles for c in NON_TETRAHEDRAL):
        with pytest.raises(InvalidSmilesError, match="@SP/@TB/@OH"):
            tok.tokenize(smiles)
        return
    # What the readers hand the tokenizer: the policy's output (atom maps cleared; salts stripped).
    mol, _ = standardize_mol(Chem.MolFromSmiles(smiles), StandardizePolicy())
    standardised = Chem.MolToSmiles(mol)
    assert _canonical(tok.detokenize(tok.tokenize(standardised))) == standardised
    if ":" not in smiles:  # the raw text too, salts and all (SELFIES writes no atom-map numbers)
        assert _canonical(tok.detokenize(tok.tokenize(smiles))) == _canonical(smiles)


def test_selfies_tetrahedral_classes_are_plain_chirality():
    tok = SelfiesTokenizer()
    assert tok.tokenize("F[C@TH1](Cl)(Br)I") == tok.tokenize("F[C@](Cl)(Br)I")
    assert tok.tokenize("F[C@TH2](Cl)(Br)I") == tok.tokenize("F[C@@](Cl)(Br)I")
    assert tok.tokenize("F[C@TH1](Cl)(Br)I") != tok.tokenize("F[C@TH2](Cl)(Br)I")
