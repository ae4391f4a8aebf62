"""The input standardisation policy: what molgen changes in a user's molecules, and a count of every change.

Chemists' files hold salts (``CCN.Cl``), solvates, charged forms, isotopic
labels and stereochemistry. A generative model can only learn what it is
shown, so molgen applies one documented policy to every molecule it reads and
reports each kind of change it made ("stripped salts/solvents from 12,
dropped stereo from 0"); nothing is changed silently.

Default policy (:class:`StandardizePolicy`):

* **salts and solvents stripped**: the largest organic fragment is kept
  (RDKit ``LargestFragmentChooser(preferOrganic=True)``), so ``CCN.Cl`` becomes
  ``CCN`` and a sodium carboxylate its carboxylate;
* **charges kept**: zwitterions, quaternary ammoniums and charged tautomers
  stay as written (``charges="neutralize"`` instead neutralises what has a
  neutral form, RDKit ``Uncharger``);
* **stereo kept**: tetrahedral centres and E/Z bonds stay (``stereo="drop"``
  removes them, for a model trained without stereochemistry such as MOSES);
* **isotopes kept** (``isotopes="drop"`` sets every atom to natural abundance);
* **atom-map numbers cleared** (``[CH3:1]``): they annotate reactions, not
  molecules, and SELFIES cannot write them.

The output is RDKit canonical SMILES, isomeric unless stereo and isotopes are
both dropped.

Example::

    >>> smiles, report = standardize_smiles(["CC[NH3+].[Cl-]", "C[C@H](N)O"])
    >>> smiles
    ['CC[NH3+]', 'C[C@H](N)O']
    >>> report.summary()
    'standardised 2 molecule(s): stripped salts/solvents from 1, neutralised charges on 0, dropped stereo from 0, dropped isotopes from 0, cleared atom maps from 0'

Unparseable strings come back as ``None`` and are counted as ``invalid``;
readers skip and report them before this step, so normally there are none.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from rdkit import Chem, rdBase

from molgen.chem._pool import pmap
from molgen.chem.molecules import _fragment_chooser, _uncharger
from molgen.errors import ConfigError

__all__ = [
    "StandardizePolicy",
    "StandardizeReport",
    "standardize_mol",
    "standardize_smiles",
    "CHANGES",
    "has_stereo",
    "has_formal_charge",
    "stereo_charge_rates",
]

# The kinds of change the policy can make, in report order.
CHANGES: tuple[str, ...] = ("salts_stripped", "charges_neutralized", "stereo_dropped", "isotopes_dropped", "atom_maps_cleared")
_LABELS = {
    "salts_stripped": "stripped salts/solvents from",
    "charges_neutralized": "neutralised charges on",
    "stereo_dropped": "dropped stereo from",
    "isotopes_dropped": "dropped isotopes from",
    "atom_maps_cleared": "cleared atom maps from",
}


@dataclass(frozen=True)
class StandardizePolicy:
    """What to change in input molecules (defaults: strip salts, keep charges, stereo and isotopes)."""

    strip_salts: bool = True
    charges: Literal["keep", "neutralize"] = "keep"
    stereo: Literal["keep", "drop"] = "keep"
    isotopes: Literal["keep", "drop"] = "keep"

    def __post_init__(self) -> None:
        for name, allowed in (("charges", ("keep", "neutralize")), ("stereo", ("keep", "drop")), ("isotopes", ("keep", "drop"))):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"standardisation {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")

    @property
    def isomeric(self) -> bool:
        """Whether output SMILES carry stereo/isotope labels (RDKit writes both or neither)."""
        return self.stereo == "keep" or self.isotopes == "keep"

    def describe(self) -> str:
        """One line naming the policy, for logs and run folders."""
        salts = "salts/solvents stripped (largest organic fragment)" if self.strip_salts else "all fragments kept"
        return f"{salts}, charges {self.charges}, stereo {self.stereo}, isotopes {self.isotopes}"


@dataclass
class StandardizeReport:
    """How many molecules each kind of change touched."""

    n_input: int = 0
    invalid: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CHANGES, 0))

    def add(self, changes: Iterable[str] | None) -> None:
        self.n_input += 1
        if changes is None:
            self.invalid += 1
            return
        for change in changes:
            self.counts[change] += 1

    @property
    def n_changed(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        parts = [f"{_LABELS[k]} {self.counts[k]:,}" for k in CHANGES]
        tail = f"; {self.invalid:,} unparseable" if self.invalid else ""
        return f"standardised {self.n_input:,} molecule(s): " + ", ".join(parts) + tail

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def has_stereo(mol: Chem.Mol) -> bool:
    """Whether ``mol`` has a specified tetrahedral centre or E/Z double bond (after RDKit's stereo perception)."""
    if any(a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED for a in mol.GetAtoms()):
        return True
    return any(b.GetStereo() not in (Chem.BondStereo.STEREONONE, Chem.BondStereo.STEREOANY) for b in mol.GetBonds())


def standardize_mol(mol: Chem.Mol, policy: StandardizePolicy = StandardizePolicy()) -> tuple[Chem.Mol, list[str]]:
    """A standardised copy of ``mol`` and the kinds of change (of :data:`CHANGES`) that were made."""
    out, changes = Chem.Mol(mol), []
    with rdBase.BlockLogs():
        if policy.strip_salts and len(Chem.GetMolFrags(out)) > 1:
            out = _fragment_chooser().choose(out)
            changes.append("salts_stripped")
        if policy.charges == "neutralize" and any(a.GetFormalCharge() for a in out.GetAtoms()):
            before = Chem.MolToSmiles(out)
            out = _uncharger().uncharge(out)
            if Chem.MolToSmiles(out) != before:
                changes.append("charges_neutralized")
    if policy.stereo == "drop" and has_stereo(out):
        Chem.RemoveStereochemistry(out)
        changes.append("stereo_dropped")
    if policy.isotopes == "drop" and any(a.GetIsotope() for a in out.GetAtoms()):
        for atom in out.GetAtoms():
            atom.SetIsotope(0)
        out = Chem.RemoveHs(out)  # deuterium becomes plain hydrogen, which SMILES writes implicitly
        changes.append("isotopes_dropped")
    if any(a.GetAtomMapNum() for a in out.GetAtoms()):
        for atom in out.GetAtoms():
            atom.SetAtomMapNum(0)
        changes.append("atom_maps_cleared")
    return out, changes


def has_formal_charge(mol: Chem.Mol) -> bool:
    """Whether any atom of ``mol`` carries a formal charge (zwitterions included)."""
    return any(a.GetFormalCharge() for a in mol.GetAtoms())


def stereo_charge_rates(smiles: Iterable[str | None]) -> dict[str, float]:
    """Fractions of the valid molecules that carry stereo (``stereo_rate``) and a formal charge (``charge_rate``).

    Parsing re-perceives stereochemistry, so a ``@`` written on an atom that is
    not a stereocentre does not count.
    """
    n = stereo = charged = 0
    with rdBase.BlockLogs():
        for text in smiles:
            mol = Chem.MolFromSmiles(text) if text else None
            if mol is None:
                continue
            n += 1
            stereo += has_stereo(mol)
            charged += has_formal_charge(mol)
    return {"n_valid": n, "stereo_rate": stereo / n if n else float("nan"), "charge_rate": charged / n if n else float("nan")}


def _standardize_one(smiles: str, policy: StandardizePolicy) -> tuple[str | None, list[str] | None]:
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) else None
    if mol is None:
        return None, None
    out, changes = standardize_mol(mol, policy)
    return Chem.MolToSmiles(out, isomericSmiles=policy.isomeric), changes


def standardize_smiles(
    smiles: Iterable[str], policy: StandardizePolicy = StandardizePolicy(), n_jobs: int | None = None
) -> tuple[list[str | None], StandardizeReport]:
    """Apply ``policy`` to every SMILES (in a process pool for large inputs); canonical SMILES and the report."""
    results = pmap(functools.partial(_standardize_one, policy=policy), list(smiles), n_jobs=n_jobs)
    report = StandardizeReport()
    for _, changes in results:
        report.add(changes)
    return [s for s, _ in results], report
