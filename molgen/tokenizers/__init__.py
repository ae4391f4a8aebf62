"""Molecule string tokenizers and the token vocabulary.

Two tokenizers share one small interface (``name``, ``tokenize(smiles)``,
``detokenize(tokens) -> smiles``): :class:`SmilesTokenizer` (atom-level
regex) and :class:`SelfiesTokenizer` (SELFIES symbols). :class:`Vocabulary`
maps tokens to integer ids with fixed special tokens.
"""

from __future__ import annotations

from molgen.errors import ConfigError
from molgen.tokenizers.selfies_tokenizer import SelfiesTokenizer
from molgen.tokenizers.smiles_tokenizer import SmilesTokenizer
from molgen.tokenizers.vocabulary import (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    Vocabulary,
)

__all__ = [
    "SmilesTokenizer",
    "SelfiesTokenizer",
    "Tokenizer",
    "TOKENIZERS",
    "get_tokenizer",
    "Vocabulary",
    "SPECIAL_TOKENS",
    "PAD_TOKEN",
    "BOS_TOKEN",
    "EOS_TOKEN",
    "UNK_TOKEN",
]

Tokenizer = SmilesTokenizer | SelfiesTokenizer

TOKENIZERS: dict[str, type[SmilesTokenizer] | type[SelfiesTokenizer]] = {
    SmilesTokenizer.name: SmilesTokenizer,
    SelfiesTokenizer.name: SelfiesTokenizer,
}


def get_tokenizer(name: str) -> Tokenizer:
    """Tokenizer by name: ``"smiles"`` or ``"selfies"`` (case-insensitive)."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in TOKENIZERS:
        raise ConfigError(f"unknown tokenizer {name!r}; choose one of {sorted(TOKENIZERS)}")
    return TOKENIZERS[key]()
