"""The default sanity filter on what an optimizer may return: no chemically absurd molecules.

A latent-space optimizer finds whatever the objective rewards, including
molecules no chemist would make: QED rewards ``CC(=O)Nc1ccccccccccc(Cl)cc1``
(a 14-membered "aromatic" ring) with 0.81. The oracle drops a new molecule
before scoring it when it has

* a ring of more than ``max_ring_size`` atoms (8; macrocycles are out of
  scope of these models' training data),
* an aromatic ring of more than ``max_aromatic_ring_size`` atoms (7: aromatic
  rings in drugs have 5 or 6, azulene 7),
* a structural alert: the MCF and PAINS SMARTS the MOSES filters use
  (``molgen/metrics/data``; reactive, unstable or assay-interfering groups),
* an unpaired electron (a radical such as ``C(=O)[CH]Cl``): models whose
  vocabulary has bracket atoms (the drug-like model's ``[CH1]``) can write
  them, and QED scores them like the closed-shell molecule.

A filtered molecule is logged with status ``filtered`` and its reason, costs
no oracle call and gets no score (like an infeasible one), so the budget goes
to molecules worth making. ``--no-sanity-filter`` switches it off (the PMO
protocol has no filter; ``scripts/bench_pmo.py`` runs without it).

Example::

    >>> SanityFilter().reason("CC(=O)Nc1ccccccccccc(Cl)cc1")
    'aromatic ring of 14 atoms'
    >>> SanityFilter().reason("CC(=O)Nc1ccc(O)cc1") is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from molgen import chem
from molgen.errors import ConfigError

__all__ = ["SanityFilter", "has_structural_alert"]


@dataclass(frozen=True)
class SanityFilter:
    """Why a molecule is not worth scoring (:meth:`reason`), or ``None`` when it is."""

    max_ring_size: int = 8
    max_aromatic_ring_size: int = 7
    alerts: bool = True
    radicals: bool = True

    def __post_init__(self) -> None:
        if self.max_ring_size < 3 or self.max_aromatic_ring_size < 3:
            raise ConfigError("sanity filter ring sizes must be at least 3")

    def reason(self, smiles: str) -> str | None:
        mol, failure = chem.try_parse(smiles)
        if mol is None:
            return f"does not parse ({failure})"
        ring_info = mol.GetRingInfo()
        for ring in ring_info.AtomRings():
            aromatic = all(mol.GetAtomWithIdx(i).GetIsAromatic() for i in ring)
            if aromatic and len(ring) > self.max_aromatic_ring_size:
                return f"aromatic ring of {len(ring)} atoms"
            if len(ring) > self.max_ring_size:
                return f"ring of {len(ring)} atoms"
        if self.alerts and has_structural_alert(mol):
            return "structural alert (MCF/PAINS)"
        if self.radicals and any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
            return "radical (unpaired electron)"  # checked last: a molecule with an alert keeps that reason
        return None

    def to_dict(self) -> dict:
        return {"max_ring_size": self.max_ring_size, "max_aromatic_ring_size": self.max_aromatic_ring_size, "alerts": self.alerts, "radicals": self.radicals}


def has_structural_alert(mol) -> bool:
    """Any MCF or PAINS pattern (the MOSES filter SMARTS), with RDKit's fingerprint screen first."""
    import numpy as np
    from rdkit import Chem

    from molgen.metrics._features import (
        _SCREEN_BITS,
        _filter_patterns,
        _fingerprint_bits,
    )

    with_h = Chem.AddHs(mol)
    patterns, screens = _filter_patterns()
    present = _fingerprint_bits(Chem.PatternFingerprint(with_h, fpSize=_SCREEN_BITS))
    candidates = np.flatnonzero(~(screens & ~present).any(axis=1))
    return any(with_h.HasSubstructMatch(patterns[i]) for i in candidates)
