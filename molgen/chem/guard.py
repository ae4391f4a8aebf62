"""Size and shape limits checked before a molecule reaches RDKit's recursive code.

RDKit writes SMILES, ranks atoms for canonical order and walks ring systems
with recursive C++ functions. A molecule that is large enough overflows the
C stack and kills the whole process with a segmentation fault -- no Python
exception, no message: ``Chem.MolToSmiles(Chem.MolFromSmiles("C" * 20000))``
does it. Other shapes (thousands of fragments, ring-closure soup) cost time
that grows much faster than their length. One such line in a training file
must not lose the run, so every SMILES is checked here first, and molecules
over a limit are rejected with a reason of their own, like any invalid input.

The checks are cheap: the string is measured with C-speed ``str`` and regex
operations (a giant string is rejected before RDKit ever parses it), and the
parsed molecule's atom count is read once. A SMILES shorter than every limit
cannot exceed any of them, so ordinary molecules skip the scan entirely.

Limits (:class:`MoleculeLimits`; the defaults are far above any real
drug-like molecule or natural product -- maitotoxin, one of the largest
non-polymeric natural products, has 236 heavy atoms, 32 rings and a branch
depth under 20):

============================  =========  =======================================
limit                          default    reason when exceeded
============================  =========  =======================================
``max_smiles_chars``           10 000     ``too_large``
``max_atoms``                  1 000      ``too_large`` (heavy atoms plus any
                                          hydrogens written as atoms)
``max_bracket_chars``          64         ``too_large`` (one ``[...]`` atom)
``max_branch_depth``           200        ``too_deep`` (nested parentheses)
``max_fragments``              100        ``too_many_fragments`` (``.``-separated)
``max_ring_closures``          500        ``too_many_rings`` (ring-bond labels)
``max_seconds``                60         ``timeout`` (per molecule, in worker
                                          processes; see :mod:`molgen.chem._pool`)
============================  =========  =======================================

RDKit itself handles 10 000-atom chains; 20 000 crash it, so the defaults keep
a factor of ten in hand. Change them for the whole process with
:func:`set_limits`, for a block with :func:`limits_applied`, or from the
environment before molgen starts: ``MOLGEN_LIMITS="max_atoms=2000,
max_smiles_chars=20000"`` (any field, comma-separated), or ``MOLGEN_LIMITS=off``
to switch the guard off (at your own risk; the benchmark uses it to measure
the guard's cost). Worker processes are forked, so they see the parent's limits.

Example::

    >>> check_smiles("CCO") is None
    True
    >>> check_smiles("C" + "(C" * 300 + ")" * 300)
    'too_deep'
    >>> explain_limit("C" * 20000)
    '20000 characters; the limit is max_smiles_chars=10000'
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from rdkit import Chem

from molgen.errors import ConfigError

__all__ = [
    "LIMIT_REASONS",
    "MoleculeLimits",
    "DEFAULT_LIMITS",
    "NO_LIMITS",
    "get_limits",
    "set_limits",
    "limits_applied",
    "limits_from_text",
    "check_smiles",
    "check_mol",
    "explain_limit",
]

#: The reject reasons this module can return, in the order they are checked.
LIMIT_REASONS: tuple[str, ...] = ("too_large", "too_deep", "too_many_fragments", "too_many_rings")

_BIG = 1 << 62


@dataclass(frozen=True)
class MoleculeLimits:
    """Upper bounds on one molecule; see the module docstring for the reasons."""

    max_smiles_chars: int = 10_000
    max_atoms: int = 1_000
    max_bracket_chars: int = 64
    max_branch_depth: int = 200
    max_fragments: int = 100
    max_ring_closures: int = 500
    #: Per-molecule time limit, in seconds, for work done in worker processes.
    max_seconds: int = 60

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"molecule limit {f.name} must be a positive integer, got {value!r}")

    @property
    def safe_length(self) -> int:
        """SMILES up to this many characters cannot exceed any limit (each needs that many characters)."""
        return min(
            self.max_smiles_chars,
            self.max_atoms,
            self.max_bracket_chars + 1,
            self.max_branch_depth,
            self.max_fragments - 1 + self.max_fragments,
            2 * self.max_ring_closures,
        )


DEFAULT_LIMITS = MoleculeLimits()
#: Every limit out of reach: the guard does nothing.
NO_LIMITS = MoleculeLimits(*([_BIG] * len(dataclasses.fields(MoleculeLimits))))

_ENV = "MOLGEN_LIMITS"
_BRACKET = re.compile(r"\[[^\]]*\]")
_RING_LABEL = re.compile(r"%\(\d+\)|%\d\d|\d")


def limits_from_text(text: str) -> MoleculeLimits:
    """Limits from ``"off"`` or ``"name=value,name=value"`` (unnamed fields keep their defaults)."""
    text = text.strip()
    if text.lower() in ("off", "none", "0"):
        return NO_LIMITS
    names = {f.name for f in dataclasses.fields(MoleculeLimits)}
    values: dict[str, int] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in names or not value.strip().isdigit():
            raise ConfigError(
                f"bad molecule limit {item!r} in {_ENV}; write name=integer with names from {', '.join(sorted(names))}, or 'off'"
            )
        values[name] = int(value)
    return MoleculeLimits(**values)


_current = limits_from_text(os.environ[_ENV]) if os.environ.get(_ENV) else DEFAULT_LIMITS


def get_limits() -> MoleculeLimits:
    """The limits in force in this process."""
    return _current


def set_limits(limits: MoleculeLimits | None) -> MoleculeLimits:
    """Put ``limits`` in force (``None``: the defaults) and return the previous ones."""
    global _current
    previous, _current = _current, (limits or DEFAULT_LIMITS)
    return previous


@contextlib.contextmanager
def limits_applied(limits: MoleculeLimits | None) -> Iterator[MoleculeLimits]:
    """Put ``limits`` in force inside a ``with`` block."""
    previous = set_limits(limits)
    try:
        yield get_limits()
    finally:
        set_limits(previous)


def check_smiles(text: str) -> str | None:
    """The reason ``text`` is over a limit, or ``None``; never calls RDKit."""
    found = _violation(text, _current)
    return found[0] if found else None


def check_mol(mol: Chem.Mol) -> str | None:
    """``"too_large"`` if the parsed molecule has more atoms than allowed, else ``None``."""
    return "too_large" if mol.GetNumAtoms() > _current.max_atoms else None


def explain_limit(text: str) -> str:
    """What limit ``text`` exceeds, as a short phrase (``""`` if none)."""
    found = _violation(text, _current)
    return found[1] if found else ""


def _violation(text: str, limits: MoleculeLimits) -> tuple[str, str] | None:
    n = len(text)
    if n <= limits.safe_length:
        return None
    if n > limits.max_smiles_chars:
        return "too_large", f"{n} characters; the limit is max_smiles_chars={limits.max_smiles_chars}"
    if "[" in text and n > limits.max_bracket_chars + 1:
        longest = max((len(m) - 2 for m in _BRACKET.findall(text)), default=0)
        if longest > limits.max_bracket_chars:
            return "too_large", f"a bracket atom of {longest} characters; the limit is max_bracket_chars={limits.max_bracket_chars}"
    if text.count("(") > limits.max_branch_depth:
        depth = _branch_depth(text)
        if depth > limits.max_branch_depth:
            return "too_deep", f"branches nested {depth} deep; the limit is max_branch_depth={limits.max_branch_depth}"
    fragments = text.count(".") + 1
    if fragments > limits.max_fragments:
        return "too_many_fragments", f"{fragments} fragments; the limit is max_fragments={limits.max_fragments}"
    if n >= 2 * limits.max_ring_closures:
        labels = len(_RING_LABEL.findall(_BRACKET.sub("", text)))
        if labels > 2 * limits.max_ring_closures:
            return "too_many_rings", f"{labels // 2} ring closures; the limit is max_ring_closures={limits.max_ring_closures}"
    return None


def _branch_depth(text: str) -> int:
    """Deepest parenthesis nesting, by one vectorised pass over the bytes."""
    codes = np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8)
    steps = (codes == ord("(")).astype(np.int64) - (codes == ord(")"))
    return int(np.cumsum(steps).max(initial=0))
