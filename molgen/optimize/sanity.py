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
  (``molgen/metrics/data``; reactive, unstable or assay-interfering groups)
  that its lead does not carry itself (near a lead, :meth:`SanityFilter.lead_alerts`),
* an unpaired electron (a radical such as ``C(=O)[CH]Cl``): models whose
  vocabulary has bracket atoms (the drug-like model's ``[CH1]``) can write
  them, and QED scores them like the closed-shell molecule.

Near a lead, the alerts the lead carries are allowed in the molecules found
from it: the chemist chose that lead, and its neighbours above a high
similarity floor mostly keep the group the alert matches. Filtering them
stalled two of the forty leads of ``scripts/bench_leadopt.py`` at floor 0.6
(the thiosemicarbazone ``CCC1(CC)C(=O)NC(=NNC(N)=S)NC1=O`` found no molecule to
score). An alert the lead does not carry is still filtered.

A filtered molecule is logged with status ``filtered`` and its reason, costs
no oracle call and gets no score (like an infeasible one), so the budget goes
to molecules worth making. ``--no-sanity-filter`` switches it off (the PMO
protocol has no filter; ``scripts/bench_pmo.py`` runs without it).

Example::

    >>> SanityFilter().reason("CC(=O)Nc1ccccccccccc(Cl)cc1")
    'aromatic ring of 14 atoms'
    >>> SanityFilter().reason("CC(=O)Nc1ccc(O)cc1") is None
    True
    >>> lead = "CCC1(CC)C(=O)NC(=NNC(N)=S)NC1=O"
    >>> SanityFilter().alert_names(SanityFilter().lead_alerts(lead))
    ['MCF10']
    >>> SanityFilter().reason("CCC1(C)C(=O)NC(=NNC(N)=S)NC1=O", allowed=SanityFilter().lead_alerts(lead)) is None
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from molgen import chem
from molgen.errors import ConfigError

__all__ = ["SanityFilter", "has_structural_alert", "structural_alerts"]


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

    def reason(self, smiles: str, allowed: frozenset[int] = frozenset()) -> str | None:
        """Why ``smiles`` is filtered, or None; ``allowed``: alerts (indices) not held against it (its lead's)."""
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
        if self.alerts and has_structural_alert(mol, allowed):
            return "structural alert (MCF/PAINS)"
        if self.radicals and any(atom.GetNumRadicalElectrons() for atom in mol.GetAtoms()):
            return "radical (unpaired electron)"  # checked last: a molecule with an alert keeps that reason
        return None

    def lead_alerts(self, smiles: str) -> frozenset[int]:
        """The alerts (pattern indices) a lead carries, allowed in the molecules found from it; empty when
        alerts are off or the lead does not parse."""
        mol = chem.try_parse(smiles)[0] if self.alerts else None
        return structural_alerts(mol) if mol is not None else frozenset()

    @staticmethod
    def alert_names(alerts: frozenset[int]) -> list[str]:
        """Names of alert indices: ``MCF10``, or the PAINS ``regId`` (``ene_rhod_A(235)``)."""
        from molgen.metrics._features import _filter_names

        names = _filter_names()
        return [names[i] for i in sorted(alerts)]

    def to_dict(self) -> dict:
        return {"max_ring_size": self.max_ring_size, "max_aromatic_ring_size": self.max_aromatic_ring_size, "alerts": self.alerts, "radicals": self.radicals}


def has_structural_alert(mol, allowed: frozenset[int] = frozenset()) -> bool:
    """Any MCF or PAINS pattern (the MOSES filter SMARTS) but those in ``allowed``, with RDKit's fingerprint screen first."""
    return bool(_alerts(mol, allowed, first=True))


def structural_alerts(mol) -> frozenset[int]:
    """Indices of every MCF and PAINS pattern ``mol`` matches (:meth:`SanityFilter.alert_names` names them)."""
    return frozenset(_alerts(mol, frozenset(), first=False))


def _alerts(mol, allowed: frozenset[int], first: bool) -> list[int]:
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
    found = []
    for i in np.flatnonzero(~(screens & ~present).any(axis=1)).tolist():
        if i not in allowed and with_h.HasSubstructMatch(patterns[i]):
            found.append(i)
            if first:
                break
    return found
