"""Tokenizers and vocabulary: exact tokens, round trips on real MOSES molecules, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from rdkit import Chem

from molgen.datasets import default_training_smiles
from molgen.errors import CheckpointError, ConfigError, DataError, InvalidSmilesError
from molgen.tokenizers import (
    SelfiesTokenizer,
    SmilesTokenizer,
    Vocabulary,
    get_tokenizer,
)

HARD_CASES = [
    "C[N+](C)(C)C",  # charged atoms
    "[O-]C(=O)c1ccccc1",
    "[NH4+]",
    "[Na+].[Cl-]",  # disconnected fragments
    "C[C@@H](N)C(=O)O",  # tetrahedral stereo
    "N[C@@H](Cc1c[nH]c2ccccc12)C(=O)O",
    "F/C=C/F",  # double-bond stereo
    "C/C=C\\C",
    "C%10CCCCC%10",  # two-digit ring-bond label
    "C1CC2CC3CC4CC5CC6CC7CC8CC9CC%10CC%11CC%11CC%10CC9CC8CC7CC6CC5CC4CC3CC2C1",
    "ClC(Br)c1ccccc1",  # two-letter halogens
    "c1cc[nH]c1",  # aromatic n and [nH]
    "c1ccncc1",
    "c1ccc2c(c1)[nH]c1ccccc12",
    "[2H]C([2H])([2H])O",  # isotopes
    "[13CH4]",
    "C#N",
    "O=S(=O)(O)O",
    "C[Si](C)(C)C",
    "B(O)O",
    "c1ccoc1",
    "c1ccsc1",
    "C1=CC=CC=C1",
]


@pytest.fixture(scope="module")
def moses_sample() -> list[str]:
    # First 500 of the seeded MOSES-train sample shipped in data/.
    return default_training_smiles(limit=500)


def _canon(smiles: str) -> str:
    mol = Chem.MolFromSmiles(smiles)
    assert mol is not None, smiles
    return Chem.MolToSmiles(mol)


# -- SMILES tokenizer ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("smiles", "tokens"),
    [
        ("Clc1ccc[nH]1", ["Cl", "c", "1", "c", "c", "c", "[nH]", "1"]),
        ("BrCCBr", ["Br", "C", "C", "Br"]),
        ("C[C@@H](O)/C=C\\[13CH3]", ["C", "[C@@H]", "(", "O", ")", "/", "C", "=", "C", "\\", "[13CH3]"]),
        ("C%10CC%10.[Na+]", ["C", "%10", "C", "C", "%10", ".", "[Na+]"]),
        ("C%(123)C%(123)", ["C", "%(123)", "C", "%(123)"]),
        ("O=C=O", ["O", "=", "C", "=", "O"]),
        ("C#N", ["C", "#", "N"]),
        ("c1ccoc1", ["c", "1", "c", "c", "o", "c", "1"]),
        ("*C", ["*", "C"]),
        ("", []),
    ],
)
def test_smiles_tokens_exact(smiles: str, tokens: list[str]) -> None:
    assert SmilesTokenizer().tokenize(smiles) == tokens


@pytest.mark.parametrize("smiles", ["CC O", "C>C", "lC", "C[N+", "C?", "CC\n"])
def test_smiles_untokenizable_character_raises(smiles: str) -> None:
    with pytest.raises(InvalidSmilesError) as info:
        SmilesTokenizer().tokenize(smiles)
    assert info.value.reason == "tokenize"


def test_smiles_round_trip_real_molecules(moses_sample: list[str]) -> None:
    tok = SmilesTokenizer()
    molecules = moses_sample + HARD_CASES + [_canon(s) for s in moses_sample[:100] + HARD_CASES]
    for smiles in molecules:
        tokens = tok.tokenize(smiles)
        assert tok.detokenize(tokens) == smiles
        # A bracket atom is always one token, and no token is a stray bracket.
        assert all(t.count("[") == t.count("]") <= 1 for t in tokens)


def test_smiles_tokens_count_atoms(moses_sample: list[str]) -> None:
    # Every atom is exactly one token, so atom tokens = heavy atoms (+ explicit [2H] etc.).
    tok = SmilesTokenizer()
    bonds_and_labels = set("()=#-/\\.:~$") | set("0123456789")
    for smiles in moses_sample[:100]:
        atoms = [t for t in tok.tokenize(smiles) if t not in bonds_and_labels and not t.startswith("%")]
        assert len(atoms) == Chem.MolFromSmiles(smiles).GetNumAtoms()


# -- SELFIES tokenizer --------------------------------------------------------------


def test_selfies_round_trip_real_molecules(moses_sample: list[str]) -> None:
    tok = SelfiesTokenizer()
    for smiles in moses_sample + HARD_CASES:
        tokens = tok.tokenize(smiles)
        # Symbols are bracketed; "." separates fragments.
        assert all(t == "." or (t.startswith("[") and t.endswith("]")) for t in tokens)
        assert _canon(tok.detokenize(tokens)) == _canon(smiles)


def test_selfies_encode_and_tokens() -> None:
    tok = SelfiesTokenizer()
    assert tok.encode_smiles("C=O") == "[C][=O]"
    assert tok.tokenize("C=O") == ["[C]", "[=O]"]
    assert tok.detokenize(["[C]", "[=O]"]) == "C=O"
    assert tok.detokenize([]) == ""


@pytest.mark.parametrize("smiles", ["C1CC", "", "C(C"])
def test_selfies_unencodable_raises(smiles: str) -> None:
    with pytest.raises(InvalidSmilesError) as info:
        SelfiesTokenizer().tokenize(smiles)
    assert info.value.reason == "selfies"


def test_selfies_decode_of_foreign_symbol_raises() -> None:
    with pytest.raises(InvalidSmilesError) as info:
        SelfiesTokenizer().detokenize(["[C]", "<unk>", "[O]"])
    assert info.value.reason == "selfies"
    assert "\n" not in str(info.value)


def test_get_tokenizer() -> None:
    assert isinstance(get_tokenizer("smiles"), SmilesTokenizer)
    assert isinstance(get_tokenizer("SELFIES"), SelfiesTokenizer)
    assert get_tokenizer("selfies").name == "selfies"
    with pytest.raises(ConfigError, match="smiles"):
        get_tokenizer("deepsmiles")


# -- Vocabulary ---------------------------------------------------------------------


def test_vocabulary_order_is_frequency_then_lexicographic() -> None:
    vocab = Vocabulary.build([["O", "C", "N"], ["C", "N", "Cl"], ["Br"]])
    # C:2, N:2 (tie -> lexicographic), then Br, Cl, O with one each.
    assert vocab.tokens == ["<pad>", "<bos>", "<eos>", "<unk>", "C", "N", "Br", "Cl", "O"]
    assert len(vocab) == 9
    assert (vocab.PAD, vocab.BOS, vocab.EOS, vocab.UNK) == (0, 1, 2, 3)
    assert "Cl" in vocab and "F" not in vocab
    rebuilt = Vocabulary.build([["Br"], ["C", "N", "Cl"], ["N", "C", "O"]])
    assert rebuilt == vocab


def test_vocabulary_min_freq() -> None:
    vocab = Vocabulary.build([["C", "C", "O"], ["C", "N", "O"]], min_freq=2)
    assert vocab.tokens[4:] == ["C", "O"]
    assert vocab.encode(["N"], add_bos=False, add_eos=False) == [Vocabulary.UNK]
    with pytest.raises(ConfigError):
        Vocabulary.build([["C"]], min_freq=0)


def test_vocabulary_encode_decode() -> None:
    vocab = Vocabulary.build([["C", "C", "O"], ["C", "N"]])
    assert vocab.encode(["C", "O", "Xx"]) == [1, 4, 6, 3, 2]
    assert vocab.encode(["C"], add_bos=False, add_eos=False) == [4]
    assert vocab.decode([1, 4, 6, 2, 5, 5, 0]) == ["C", "O"]  # stops at EOS
    assert vocab.decode([0, 1, 5, 0, 4]) == ["N", "C"]  # PAD/BOS skipped
    assert vocab.decode(np.array([1, 3, 4, 2])) == ["<unk>", "C"]
    with pytest.raises(ConfigError):
        vocab.decode([1, 99])


def test_vocabulary_encode_batch() -> None:
    vocab = Vocabulary.build([["C", "C", "O"], ["C", "N"]])
    batch = vocab.encode_batch([["C"], ["C", "N", "O"], []], max_len=6)
    assert batch.dtype == np.int64
    np.testing.assert_array_equal(batch, [[1, 4, 2, 0, 0, 0], [1, 4, 5, 6, 2, 0], [1, 2, 0, 0, 0, 0]])
    assert vocab.encode_batch([["C"], ["O", "N"]]).shape == (2, 4)
    np.testing.assert_array_equal(vocab.encode_batch([["C", "O"]], add_bos=False), [[4, 6, 2]])
    with pytest.raises(DataError, match="max_len"):
        vocab.encode_batch([["C", "C", "C"]], max_len=4)


def test_vocabulary_serialisation(tmp_path) -> None:
    vocab = Vocabulary.build([["C", "[nH]", "Cl"], ["c", "1"]])
    data = json.loads(json.dumps(vocab.to_dict()))
    assert Vocabulary.from_dict(data) == vocab
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.tokens == vocab.tokens
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temp file left


@pytest.mark.parametrize(
    "data",
    [
        ["<pad>", "<bos>"],
        {"format": "something.else", "version": 1, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>"]},
        {"format": "molgen.vocabulary", "version": 99, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>"]},
        {"format": "molgen.vocabulary", "version": 1},
        {"format": "molgen.vocabulary", "version": 1, "tokens": ["C", "<pad>", "<bos>", "<eos>", "<unk>"]},
        {"format": "molgen.vocabulary", "version": 1, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", "C", "C"]},
        {"format": "molgen.vocabulary", "version": 1, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", 5]},
        {"format": "molgen.vocabulary", "version": 1, "tokens": ["<pad>", "<bos>", "<eos>", "<unk>", ""]},
    ],
)
def test_vocabulary_from_dict_rejects_malformed(data) -> None:
    with pytest.raises(CheckpointError):
        Vocabulary.from_dict(data)


def test_vocabulary_load_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"format": "molgen.vocab')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        Vocabulary.load(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["smiles", "selfies"])
def test_full_pipeline_round_trip(name: str, moses_sample: list[str]) -> None:
    tok = get_tokenizer(name)
    token_lists = [tok.tokenize(s) for s in moses_sample]
    vocab = Vocabulary.build(token_lists)
    batch = vocab.encode_batch(token_lists)
    for smiles, row in zip(moses_sample, batch):
        assert _canon(tok.detokenize(vocab.decode(row))) == _canon(smiles)


_ALPHABET = ["C", "c", "N", "n", "O", "Cl", "Br", "[nH]", "[C@@H]", "[N+]", "[13C]", "(", ")", "=", "#", "/", "\\", ".", "1", "2", "%10", "%(123)"]


@given(st.lists(st.sampled_from(_ALPHABET), max_size=30))
def test_smiles_tokenize_is_lossless_on_any_token_string(pieces: list[str]) -> None:
    text = "".join(pieces)
    tokens = SmilesTokenizer().tokenize(text)
    assert "".join(tokens) == text
    assert len(tokens) <= len(pieces)  # pieces can only merge ("%1" + "0"), never split
