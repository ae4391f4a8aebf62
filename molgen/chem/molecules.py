"""SMILES parsing, canonicalisation and standardisation.

Every function here treats RDKit's verdict as the definition of a valid
molecule: a SMILES is valid when ``Chem.MolFromSmiles`` parses *and* sanitizes
it (valence, aromaticity/kekulization), which is the validity used by the MOSES
benchmark (Polykovskiy et al., 2020, *Front. Pharmacol.* 11:565644).

Parse failures are reported per molecule with a short reason tag, one of
:data:`FAILURE_REASONS`:

``"not_a_string"``
    the input is not a ``str`` (``None``, a float NaN from pandas, bytes, ...);
``"empty"``
    the string is empty or whitespace only, or describes zero atoms;
``"parse"``
    a syntax error (unbalanced brackets or parentheses, unclosed ring, unknown
    element, embedded whitespace, ...);
``"sanitize"``
    the syntax is fine but the molecule is chemically impossible (e.g. a
    pentavalent carbon, an aromatic ring that cannot be kekulized);
``"too_large"``, ``"too_deep"``, ``"too_many_fragments"``, ``"too_many_rings"``
    the string or molecule is over a limit of :mod:`molgen.chem.guard`
    (giant chains, deep branch nesting, ...), checked before RDKit's recursive
    code can crash the process on it.

RDKit's own message goes into :attr:`molgen.errors.InvalidSmilesError.detail`;
RDKit's logging is silenced meanwhile so garbage input does not flood stderr.

Example::

    >>> canonical_smiles("OCC")
    'CCO'
    >>> try_parse("C(C)(C)(C)(C)C")[1]
    'sanitize'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from rdkit import Chem, rdBase
from rdkit.Chem.MolStandardize import rdMolStandardize

from molgen.chem import guard
from molgen.chem._pool import pmap
from molgen.errors import InvalidSmilesError

__all__ = [
    "FAILURE_REASONS",
    "parse_smiles",
    "try_parse",
    "explain_failure",
    "canonical_smiles",
    "is_valid",
    "standardize",
    "canonicalize_many",
]

FAILURE_REASONS: tuple[str, ...] = ("not_a_string", "empty", "parse", "sanitize", *guard.LIMIT_REASONS)

# RDKit log lines start with a "[hh:mm:ss] " timestamp and syntax errors with a
# fixed prefix; neither helps a user reading our one-line message.
_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
_PARSE_PREFIX = "SMILES Parse Error: "


def try_parse(smiles: object) -> tuple[Chem.Mol | None, str | None]:
    """Parse and sanitize a SMILES string without raising.

    Returns:
        ``(mol, None)`` on success, ``(None, reason)`` otherwise, where
        ``reason`` is one of :data:`FAILURE_REASONS`.
    """
    mol, error = _parse(smiles, want_detail=False)
    return mol, (error.reason if error else None)


def parse_smiles(smiles: object) -> Chem.Mol:
    """Parse and sanitize a SMILES string.

    Raises:
        InvalidSmilesError: with ``.reason`` in :data:`FAILURE_REASONS` and
            RDKit's message, where there is one, in ``.detail``.
    """
    mol, error = _parse(smiles, want_detail=True)
    if error is not None:
        raise error
    return mol


def explain_failure(smiles: object) -> InvalidSmilesError | None:
    """Return the error :func:`parse_smiles` would raise, or ``None`` if valid."""
    return _parse(smiles, want_detail=True)[1]


def is_valid(smiles: object) -> bool:
    """Whether ``smiles`` parses and sanitizes (see the module docstring)."""
    return try_parse(smiles)[0] is not None


def canonical_smiles(smiles_or_mol: str | Chem.Mol, isomeric: bool = True) -> str | None:
    """RDKit canonical SMILES of a SMILES string or molecule; ``None`` if invalid.

    ``isomeric=False`` drops stereochemistry and isotopes, so stereoisomers map
    to one string.
    """
    if isinstance(smiles_or_mol, Chem.Mol):
        mol = smiles_or_mol
        if guard.check_mol(mol) is not None:
            return None
    else:
        mol, _ = try_parse(smiles_or_mol)
        if mol is None:
            return None
    return Chem.MolToSmiles(mol, isomericSmiles=isomeric)


def standardize(mol: Chem.Mol, largest_fragment: bool = True, neutralize: bool = True) -> Chem.Mol:
    """Return a standardized copy of ``mol``; the input is left unchanged.

    Args:
        largest_fragment: keep only the largest organic fragment, which strips
            counter-ions and solvents from salts (``[Na+].CC(=O)[O-]`` ->
            acetate).
        neutralize: neutralize charges where a neutral form exists by adding
            or removing hydrogens (acetate -> acetic acid); quaternary
            ammonium and other irreducible charges stay.
    """
    out = Chem.Mol(mol)
    with rdBase.BlockLogs():
        if largest_fragment:
            out = _fragment_chooser().choose(out)
        if neutralize:
            out = _uncharger().uncharge(out)
    return out


def canonicalize_many(
    smiles: Iterable[object], n_jobs: int | None = None, isomeric: bool = True
) -> list[str | None]:
    """:func:`canonical_smiles` over many strings; ``None`` marks invalid ones.

    Runs in a process pool for large inputs (see :func:`molgen.chem._pool.pmap`).
    """
    func = functools.partial(canonical_smiles, isomeric=isomeric)
    return pmap(func, smiles, n_jobs=n_jobs, on_failure=_none)


def _none(item: object, reason: str) -> None:
    """An input whose worker process died or timed out counts as invalid."""
    return None


def _parse(smiles: object, want_detail: bool) -> tuple[Chem.Mol | None, InvalidSmilesError | None]:
    if not isinstance(smiles, str):
        return None, InvalidSmilesError(repr(smiles), "not_a_string", type(smiles).__name__)
    text = smiles.strip()
    if not text:
        return None, InvalidSmilesError(smiles, "empty")
    if any(c.isspace() for c in text):
        # RDKit reads "CCO foo" as CCO named "foo"; in a list of molecules that
        # is almost always two fields glued together, so refuse it.
        return None, InvalidSmilesError(smiles, "parse", "embedded whitespace")
    if not (text.isascii() and text.isprintable()):
        # SMILES is printable ASCII; RDKit silently drops some other characters
        # (a NUL, a zero-width space), which would turn garbage into a molecule.
        return None, InvalidSmilesError(smiles, "parse", "non-ASCII or control character")
    over = guard.check_smiles(text)
    if over is not None:
        return None, InvalidSmilesError(smiles, over, guard.explain_limit(text) if want_detail else "")
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
    if mol is not None:
        if mol.GetNumAtoms() == 0:
            return None, InvalidSmilesError(smiles, "empty", "no atoms")
        if len(text) > guard.get_limits().max_atoms and guard.check_mol(mol) is not None:
            limit = guard.get_limits().max_atoms
            return None, InvalidSmilesError(smiles, "too_large", f"{mol.GetNumAtoms()} atoms; the limit is max_atoms={limit}")
        return mol, None
    return None, _diagnose(smiles, text, want_detail)


def _diagnose(smiles: str, text: str, want_detail: bool) -> InvalidSmilesError:
    """Tell a syntax error from a sanitization error (the slow, failure-only path)."""
    if not want_detail:
        with rdBase.BlockLogs():
            raw = Chem.MolFromSmiles(text, sanitize=False)
        return InvalidSmilesError(smiles, "parse" if raw is None else "sanitize")
    with rdBase.BlockLogs(), _capture_errors() as capture:
        raw = Chem.MolFromSmiles(text, sanitize=False)
        if raw is None:
            return InvalidSmilesError(smiles, "parse", _first_message(capture))
        try:
            Chem.SanitizeMol(raw)
        except Exception as exc:  # RDKit raises several unrelated types here
            return InvalidSmilesError(smiles, "sanitize", " ".join(str(exc).split()))
    # MolFromSmiles failed but the two-step route succeeded: should not happen.
    return InvalidSmilesError(smiles, "sanitize", _first_message(capture))


class _NoCapture:
    """Stand-in for ``rdBase.CaptureErrorLog`` on RDKit releases before it."""

    messages = ""

    def __enter__(self) -> _NoCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _capture_errors():
    capture = getattr(rdBase, "CaptureErrorLog", None)
    return capture() if capture is not None else _NoCapture()


def _first_message(capture: object) -> str:
    for line in str(getattr(capture, "messages", "")).splitlines():
        line = _TIMESTAMP.sub("", line).strip()
        if line:
            return line.removeprefix(_PARSE_PREFIX)
    return ""


@functools.lru_cache(maxsize=1)
def _fragment_chooser() -> rdMolStandardize.LargestFragmentChooser:
    return rdMolStandardize.LargestFragmentChooser(preferOrganic=True)


@functools.lru_cache(maxsize=1)
def _uncharger() -> rdMolStandardize.Uncharger:
    return rdMolStandardize.Uncharger()
