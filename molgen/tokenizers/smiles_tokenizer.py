"""Regex SMILES tokenizer.

Splits a SMILES string into the lexical units a sequence model should see as
one symbol: a whole bracket atom (``[nH]``, ``[C@@H]``, ``[13CH3]``,
``[N+]``), the two-letter organic-subset halogens ``Cl`` and ``Br``, ring-bond
labels (``1`` ... ``9``, ``%10`` ... ``%99`` and RDKit's ``%(nnn)``), bond
symbols, branches and the fragment separator ``.``. This is the atom-level
scheme of Schwaller et al., "Molecular Transformer" (ACS Cent. Sci. 2019),
written from the OpenSMILES grammar.

The tokenizer is purely lexical: it does not check that the string is a
chemically valid molecule, only that every character belongs to some token.
A character no token covers (whitespace, ``l`` on its own, reaction arrows,
...) raises :class:`~molgen.errors.InvalidSmilesError` with reason
``"tokenize"``; it is never dropped silently and there is no unknown token at
this level (the vocabulary maps unseen *tokens* to ``<unk>``).

Example::

    >>> SmilesTokenizer().tokenize("Clc1ccc[nH]1")
    ['Cl', 'c', '1', 'c', 'c', 'c', '[nH]', '1']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from molgen.errors import InvalidSmilesError

__all__ = ["SmilesTokenizer"]

# Order matters: longer alternatives first (Cl before C, %nn before digits).
_TOKEN_PATTERN = re.compile(
    r"""
    (?P<token>
        \[[^\[\]]+\]          # bracket atom: isotope, chirality, H count, charge, class
      | Cl | Br               # two-letter organic-subset atoms
      | [BCNOPSFI]            # one-letter organic-subset atoms
      | [bcnops]              # aromatic organic-subset atoms
      | \*                    # wildcard atom
      | %\(\d+\)              # RDKit extended ring-bond label
      | %\d{2}                # two-digit ring-bond label
      | \d                    # one-digit ring-bond label
      | [-=\#$:/\\~]          # bonds, including the directional ones
      | [()]                  # branches
      | \.                    # disconnected fragments
    )
    | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)


class SmilesTokenizer:
    """Atom-level regex tokenizer; ``detokenize`` is plain concatenation."""

    name = "smiles"

    def tokenize(self, smiles: str) -> list[str]:
        """Split ``smiles`` into tokens; ``"".join(tokens) == smiles`` always holds."""
        tokens: list[str] = []
        for match in _TOKEN_PATTERN.finditer(smiles):
            if match.lastgroup == "bad":
                pos = match.start()
                raise InvalidSmilesError(
                    smiles,
                    "tokenize",
                    f"character {match.group()!r} at position {pos} is not part of any SMILES token",
                )
            tokens.append(match.group())
        return tokens

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into a SMILES string."""
        return "".join(tokens)

    def __repr__(self) -> str:
        return "SmilesTokenizer()"
