"""Example user objectives for ``molgen optimize --objective docs/examples/objective.py:NAME``.

molgen maximises the value. A function may score one molecule or a batch:

* ``def f(smiles: str) -> float``              -- called once per molecule;
* ``def f(smiles: list[str]) -> list[float]``  -- called with a batch, one value per molecule in order.

molgen tells the two apart by the ``str``/``list`` annotation of the first
parameter, by the ``@per_molecule``/``@batch`` markers, or else by trying both
on the first molecules. Raise an exception or return NaN for a molecule you
cannot score: it is logged as a failure and still counts as an oracle call.
The SMILES molgen passes are canonical and valid (RDKit-parsed).

    molgen optimize --objective docs/examples/objective.py:aromatic_fraction --budget 200 -o runs/opt
    molgen optimize --objective "docs/examples/objective.py:size_penalised_qed,sa:-0.1" --method bo --budget 200 -o runs/opt2
"""

from __future__ import annotations

from rdkit import Chem
from rdkit.Chem import QED

from molgen.optimize import batch


def aromatic_fraction(smiles: str) -> float:
    """Per molecule: the fraction of heavy atoms that are aromatic."""
    mol = Chem.MolFromSmiles(smiles)
    return sum(a.GetIsAromatic() for a in mol.GetAtoms()) / mol.GetNumAtoms()


@batch
def size_penalised_qed(smiles):
    """A batch: QED minus 0.02 per heavy atom above 30 (a docking score or a model would go here)."""
    mols = [Chem.MolFromSmiles(s) for s in smiles]
    return [QED.qed(m) - 0.02 * max(0, m.GetNumHeavyAtoms() - 30) for m in mols]
