"""Property columns of ``molgen sample``'s CSV: what users sort and filter sampled molecules by.

Computed in the RDKit worker processes that already decode and check every
sample (:func:`molgen.generate.sampler.stream` with ``describe=True``),
so they overlap with decoding. Columns, in order:

``mw``, ``logp``, ``qed``, ``sa``, ``tpsa``, ``hbd``, ``hba``, ``rings`` (the
functions of :data:`molgen.chem.PROPERTIES`), ``alerts_ok`` (none of the 94
unwanted-substructure alerts QED penalises, after Brenk et al. 2008: reactive,
toxic or unstable groups), and ``novel`` (not in the model's training set, by
canonical SMILES; left out when the checkpoint's training set is not
available). The optimizer's sanity filter screens the MCF/PAINS alerts
instead, which cost twice QED's alerts per molecule.

Example::

    >>> describe_texts(["CCO"], "smiles")[0][1][:2]
    (46.07, -0.001)
"""

from __future__ import annotations

from collections.abc import Sequence

from molgen import chem
from molgen.generate.strings import decode_texts

__all__ = ["PROPERTY_COLUMNS", "describe_texts", "describe_molecule", "format_row", "grid_legend"]

#: Numeric columns (names of molgen.chem.PROPERTIES) and their printed precision.
_NUMERIC: dict[str, str] = {"mw": ".2f", "logp": ".3f", "qed": ".3f", "sa": ".3f", "tpsa": ".1f", "hbd": ".0f", "hba": ".0f", "rings": ".0f"}
PROPERTY_COLUMNS: tuple[str, ...] = (*_NUMERIC, "alerts_ok")


def describe_molecule(smiles: str) -> tuple | None:
    """The :data:`PROPERTY_COLUMNS` values of one canonical SMILES (rounded as written), or None if it does not parse."""
    from rdkit.Chem import QED

    mol, _ = chem.try_parse(smiles)
    if mol is None:
        return None
    # QED's descriptor pass already matches its structural alerts and computes Crippen logP: one pass
    # gives qed, logp and alerts_ok (the MCF/PAINS screen would triple the cost per molecule).
    qed_terms = QED.properties(mol)
    known = {"qed": QED.qed(mol, qedProperties=qed_terms), "logp": qed_terms.ALOGP}
    values = [float(format(known[name] if name in known else chem.PROPERTIES[name](mol), fmt)) for name, fmt in _NUMERIC.items()]
    return (*values, qed_terms.ALERTS == 0)


def describe_texts(texts: Sequence[str], representation: str) -> list[tuple[str | None, tuple | None]]:
    """Decode model strings to canonical SMILES and describe each valid one; runs in worker processes."""
    smiles = decode_texts(list(texts), representation)
    return [(s, describe_molecule(s) if s else None) for s in smiles]


def format_row(smiles: str, values: tuple | None, novel: bool | None) -> str:
    """One CSV line: SMILES, the property columns, and ``novel`` when known (``None``: no column)."""
    cells = [smiles]
    if values is None:
        cells += [""] * len(PROPERTY_COLUMNS)
    else:
        cells += [format(v, fmt) for v, fmt in zip(values, _NUMERIC.values())] + [str(bool(values[-1]))]
    if novel is not None:
        cells.append(str(novel))
    return ",".join(cells) + "\n"


def grid_legend(index: int, values: tuple | None) -> str:
    """``#3  QED 0.81  SA 2.1  MW 312`` under a drawn molecule (the number alone without properties)."""
    if values is None:
        return f"#{index + 1}"
    row = dict(zip(PROPERTY_COLUMNS, values))
    return f"#{index + 1}  QED {row['qed']:.2f}  SA {row['sa']:.1f}  MW {row['mw']:.0f}"
