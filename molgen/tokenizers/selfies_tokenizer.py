"""SELFIES tokenizer.

SELFIES (Krenn et al., "Self-referencing embedded strings (SELFIES): A 100%
robust molecular string representation", Mach. Learn.: Sci. Technol. 2020)
encodes a molecule as a sequence of bracketed symbols such that *every*
symbol sequence decodes to a valid molecule. This tokenizer turns SMILES into
SELFIES symbols with the ``selfies`` package and back.

Chirality classes: the selfies parser knows only ``@``/``@@``, so the
tetrahedral class ``@TH1``/``@TH2`` is rewritten to its exact equivalent
``@``/``@@`` first, and other classes go through RDKit's canonical SMILES
(RDKit ignores allene ``@AL``). Square-planar, trigonal-bipyramidal and
octahedral centres (``@SP``/``@TB``/``@OH``, metal complexes) have no SELFIES
symbol and are refused; use the SMILES representation for them.

Unsupported inputs: SMILES that ``selfies`` cannot encode (unparsable strings,
atoms violating its default valence constraints, ``@SP``/``@TB``/``@OH``)
raise :class:`~molgen.errors.InvalidSmilesError` with reason ``"selfies"``;
so does decoding a symbol that is not a SELFIES symbol (e.g. ``<unk>``).

Example::

    >>> SelfiesTokenizer().tokenize("C=O")
    ['[C]', '[=O]']
    >>> SelfiesTokenizer().detokenize(['[C]', '[=O]'])
    'C=O'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import selfies as sf
from rdkit import Chem, rdBase

from molgen.errors import InvalidSmilesError

__all__ = ["SelfiesTokenizer"]


class SelfiesTokenizer:
    """SMILES -> SELFIES symbols (``tokenize``) and symbols -> SMILES (``detokenize``)."""

    name = "selfies"

    def encode_smiles(self, smiles: str) -> str:
        """Return the SELFIES string of ``smiles``."""
        if not smiles:
            raise InvalidSmilesError(smiles, "selfies", "empty string")
        if "@" in smiles and _CHIRAL_CLASS.search(smiles):
            smiles = _plain_chirality(smiles)
        try:
            return sf.encoder(smiles)
        except sf.EncoderError as exc:
            raise InvalidSmilesError(smiles, "selfies", _first_line(exc)) from None
        except Exception as exc:  # noqa: BLE001 - odd input trips selfies' own bugs (e.g. "N00": IndexError)
            raise InvalidSmilesError(smiles, "selfies", f"the selfies encoder failed ({type(exc).__name__})") from None

    def tokenize(self, smiles: str) -> list[str]:
        """SELFIES symbols of ``smiles`` (e.g. ``['[C]', '[=O]']``)."""
        return list(sf.split_selfies(self.encode_smiles(smiles)))

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Decode SELFIES symbols to a SMILES string (``""`` for no symbols)."""
        selfies_string = "".join(tokens)
        try:
            return sf.decoder(selfies_string)
        except sf.DecoderError as exc:
            raise InvalidSmilesError(selfies_string, "selfies", _first_line(exc)) from None
        except Exception as exc:  # noqa: BLE001 - as in encode_smiles
            raise InvalidSmilesError(selfies_string, "selfies", f"the selfies decoder failed ({type(exc).__name__})") from None

    def __repr__(self) -> str:
        return "SelfiesTokenizer()"


_CHIRAL_CLASS = re.compile(r"@(?:TH|AL|SP|TB|OH)\d+")
_TETRAHEDRAL = {"@TH1": "@", "@TH2": "@@"}


def _plain_chirality(smiles: str) -> str:
    """``smiles`` with chirality classes written as ``@``/``@@`` (OpenSMILES equivalents), or an error."""
    out = re.sub(r"@TH[12](?!\d)", lambda m: _TETRAHEDRAL[m.group()], smiles)
    if _CHIRAL_CLASS.search(out):
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(out)
        if mol is None:
            raise InvalidSmilesError(smiles, "selfies", "RDKit cannot parse it")
        out = Chem.MolToSmiles(mol)
        if _CHIRAL_CLASS.search(out):
            raise InvalidSmilesError(
                smiles, "selfies", "SELFIES has no symbols for @SP/@TB/@OH chirality; use --representation smiles for metal complexes"
            )
    return out


def _first_line(exc: Exception) -> str:
    # selfies puts the offending string on a second line; our messages are one line.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
