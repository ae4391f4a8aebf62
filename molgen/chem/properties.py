"""Molecular properties used as optimisation targets and benchmark statistics.

Drug-likeness and synthesisability:

* QED, the quantitative estimate of drug-likeness (Bickerton et al., 2012,
  *Nat. Chem.* 4:90), RDKit's implementation;
* SA score, the synthetic accessibility score of Ertl & Schuffenhauer (2009,
  *J. Cheminform.* 1:8), 1 (easy) to 10 (hard), from the implementation in
  RDKit's ``Contrib/SA_Score`` with its fragment-score table;
* Crippen logP (Wildman & Crippen, 1999, *J. Chem. Inf. Comput. Sci.* 39:868).

Penalized logP (Gómez-Bombarelli et al., 2018; Kusner et al., 2017;
Jin et al., 2018) is ``logP - SA - cycle``, where ``cycle`` is the number of
atoms by which the largest ring exceeds six (0 if no ring is larger).
:func:`penalized_logp` is this raw sum, the quantity tabulated for the
constrained-optimisation benchmark (JT-VAE's ``opt.test.logP-SA``, GCPN,
MolDQN). :func:`penalized_logp_normalized` standardises each of the three
terms by its mean and standard deviation over ZINC-250k, as in the
Bayesian-optimisation experiments of JT-VAE (``bo/gen_latent.py``) and in
GCPN's reward; the constants are in :data:`ZINC250K_PLOGP_STATS`.

Every property function takes a sanitized RDKit ``Mol`` and returns a float;
:data:`PROPERTIES` maps the names used on the command line to them, and
:func:`compute_properties` evaluates several over many SMILES.

Example::

    >>> from molgen.chem import parse_smiles
    >>> round(mol_weight(parse_smiles("CCO")), 2)
    46.07
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from rdkit import Chem, RDConfig
from rdkit.Chem import QED, Crippen, Descriptors, FilterCatalog, MolSurf, rdMolDescriptors

from molgen.chem._pool import pmap
from molgen.chem.molecules import try_parse
from molgen.errors import ConfigError

if TYPE_CHECKING:  # pandas costs a quarter second at start-up; only compute_properties needs it
    import pandas as pd

__all__ = [
    "qed",
    "qed_properties",
    "logp",
    "sa_score",
    "penalized_logp",
    "penalized_logp_normalized",
    "ring_size_penalty",
    "mol_weight",
    "tpsa",
    "hbd",
    "hba",
    "rotatable_bonds",
    "num_rings",
    "num_aromatic_rings",
    "num_heavy_atoms",
    "ZINC250K_PLOGP_STATS",
    "PROPERTIES",
    "compute_properties",
    "property_values",
    "canonical_with_properties",
]

#: Mean and standard deviation of logP, -SA and -cycle over ZINC-250k, the
#: constants of JT-VAE ``bo/gen_latent.py`` (Jin et al., 2018), reused by GCPN
#: (You et al., 2018) for its penalized-logP reward.
ZINC250K_PLOGP_STATS: dict[str, tuple[float, float]] = {
    "logp": (2.4570953396190123, 1.434324401111988),
    "neg_sa": (-3.0525811293166134, 0.8335207024513095),
    "neg_cycle": (-0.0485696876403053, 0.2860212110245455),
}


def qed(mol: Chem.Mol) -> float:
    """Quantitative estimate of drug-likeness, 0 (unlike drugs) to 1.

    RDKit's ``QED.qed`` (its desirability functions and weights), fed with
    :func:`qed_properties`: the same eight descriptors, the same numbers, in
    about 40 % less time (``scripts/check_qed.py``: 1.28 vs 2.20 CPU-ms per
    molecule over 50,891 ZINC-250k and MOSES molecules, none different).
    """
    return float(QED.qed(mol, qedProperties=qed_properties(mol)))


def qed_properties(mol: Chem.Mol) -> QED.QEDproperties:
    """``QED.properties(mol)``, equal field by field, computed with two shortcuts.

    * RDKit first copies the molecule through ``Chem.RemoveHs``; a molecule with
      no hydrogen atom (any molecule parsed from SMILES without ``[H]`` or
      ``[2H]`` atoms) is used as it is (the copy cost a tenth of a millisecond).
    * The structural-alert count, 116 ``HasSubstructMatch`` calls from Python
      (40 % of QED's time), is one ``FilterCatalog`` pass over the same query
      molecules (:func:`_qed_alerts`), each alert counted once, as in RDKit.

    ``tests/test_chem.py`` checks the equality on MOSES and ZINC-250k
    molecules with stereocentres, charges and explicit hydrogens.
    """
    if any(atom.GetAtomicNum() == 1 for atom in mol.GetAtoms()):
        mol = Chem.RemoveHs(mol)
    return QED.QEDproperties(
        MW=rdMolDescriptors._CalcMolWt(mol),
        ALOGP=Crippen.MolLogP(mol),
        HBA=sum(len(mol.GetSubstructMatches(p)) for p in QED.Acceptors if mol.HasSubstructMatch(p)),
        HBD=rdMolDescriptors.CalcNumHBD(mol),
        PSA=MolSurf.TPSA(mol),
        ROTB=rdMolDescriptors.CalcNumRotatableBonds(mol, rdMolDescriptors.NumRotatableBondsOptions.Strict),
        AROM=len(Chem.GetSSSR(Chem.DeleteSubstructs(Chem.Mol(mol), QED.AliphaticRings))),
        ALERTS=len(_qed_alerts().GetMatches(mol)),
    )


@functools.lru_cache(maxsize=1)
def _qed_alerts() -> FilterCatalog.FilterCatalog:
    """RDKit's QED structural alerts (``QED.StructuralAlerts``) as one filter catalogue, built once per process."""
    catalog = FilterCatalog.FilterCatalog()
    for i, query in enumerate(QED.StructuralAlerts):
        catalog.AddEntry(FilterCatalog.FilterCatalogEntry(f"qed_alert_{i}", FilterCatalog.SmartsMatcher(f"qed_alert_{i}", query, 1)))
    return catalog


def logp(mol: Chem.Mol) -> float:
    """Crippen octanol/water partition coefficient estimate."""
    return float(Crippen.MolLogP(mol))


def sa_score(mol: Chem.Mol) -> float:
    """Synthetic accessibility score, 1 (easy) to 10 (hard)."""
    return float(_sascorer().calculateScore(mol))


def ring_size_penalty(mol: Chem.Mol) -> float:
    """Atoms by which the largest ring exceeds six; 0 without such a ring."""
    sizes = [len(ring) for ring in mol.GetRingInfo().AtomRings()]
    return float(max([0] + [size - 6 for size in sizes]))


def penalized_logp(mol: Chem.Mol) -> float:
    """Raw penalized logP, ``logP - SA - cycle`` (JT-VAE/GCPN/MolDQN tables)."""
    return _plogp(logp(mol), sa_score(mol), ring_size_penalty(mol))


def penalized_logp_normalized(mol: Chem.Mol) -> float:
    """Penalized logP with each term standardised over ZINC-250k (JT-VAE BO)."""
    return _plogp_norm(logp(mol), sa_score(mol), ring_size_penalty(mol))


# The two penalized-logP formulas from their terms, so that property_values can share the terms
# between properties and still give the very floats of the functions above.
def _plogp(logp_value: float, sa: float, cycle: float) -> float:
    return logp_value - sa - cycle


def _plogp_norm(logp_value: float, sa: float, cycle: float) -> float:
    terms = {"logp": logp_value, "neg_sa": -sa, "neg_cycle": -cycle}
    return sum(
        (value - ZINC250K_PLOGP_STATS[k][0]) / ZINC250K_PLOGP_STATS[k][1]
        for k, value in terms.items()
    )


def mol_weight(mol: Chem.Mol) -> float:
    """Average molecular weight in g/mol."""
    return float(Descriptors.MolWt(mol))


def tpsa(mol: Chem.Mol) -> float:
    """Topological polar surface area (Ertl et al., 2000), in square angstrom."""
    return float(rdMolDescriptors.CalcTPSA(mol))


def hbd(mol: Chem.Mol) -> float:
    """Hydrogen-bond donors (Lipinski definition)."""
    return float(rdMolDescriptors.CalcNumHBD(mol))


def hba(mol: Chem.Mol) -> float:
    """Hydrogen-bond acceptors (Lipinski definition)."""
    return float(rdMolDescriptors.CalcNumHBA(mol))


def rotatable_bonds(mol: Chem.Mol) -> float:
    """Rotatable bonds (RDKit's default, strict definition)."""
    return float(rdMolDescriptors.CalcNumRotatableBonds(mol))


def num_rings(mol: Chem.Mol) -> float:
    """Rings in the smallest set of smallest rings."""
    return float(rdMolDescriptors.CalcNumRings(mol))


def num_aromatic_rings(mol: Chem.Mol) -> float:
    """Aromatic rings."""
    return float(rdMolDescriptors.CalcNumAromaticRings(mol))


def num_heavy_atoms(mol: Chem.Mol) -> float:
    """Atoms other than hydrogen."""
    return float(mol.GetNumHeavyAtoms())


PROPERTIES: dict[str, Callable[[Chem.Mol], float]] = {
    "qed": qed,
    "logp": logp,
    "sa": sa_score,
    "plogp": penalized_logp,
    "plogp_norm": penalized_logp_normalized,
    "mw": mol_weight,
    "tpsa": tpsa,
    "hbd": hbd,
    "hba": hba,
    "rotb": rotatable_bonds,
    "rings": num_rings,
    "arom_rings": num_aromatic_rings,
    "heavy_atoms": num_heavy_atoms,
}


def compute_properties(
    smiles: Iterable[object], names: Sequence[str] | None = None, n_jobs: int | None = None, progress=None
) -> pd.DataFrame:
    """Evaluate properties over many SMILES.

    Args:
        smiles: input strings, used as given (no standardisation).
        names: keys of :data:`PROPERTIES`; ``None`` means all of them.
        n_jobs: worker processes for large inputs (see
            :func:`molgen.chem._pool.pmap`).
        progress: a progress handle advanced as molecules are done (see
            :func:`molgen.chem._pool.pmap`).

    Returns:
        A frame with a ``smiles`` column (the inputs) and one float column per
        property, in the order of ``names``; rows of invalid SMILES are NaN.

    Raises:
        ConfigError: a name is not in :data:`PROPERTIES`.
    """
    selected = list(PROPERTIES) if names is None else list(names)
    unknown = [n for n in selected if n not in PROPERTIES]
    if unknown:
        noun = "property" if len(unknown) == 1 else "properties"
        raise ConfigError(
            f"unknown {noun} {', '.join(unknown)}; choose from {', '.join(PROPERTIES)}"
        )
    import pandas as pd

    inputs = list(smiles)
    failed = functools.partial(_nan_row, width=len(selected))
    rows = pmap(functools.partial(_property_row, names=tuple(selected)), inputs, n_jobs=n_jobs, on_failure=failed, progress=progress)
    frame = pd.DataFrame(rows, columns=selected, dtype=float)
    frame.insert(0, "smiles", inputs)
    return frame


def _nan_row(item: object, reason: str, width: int) -> list[float]:
    """The row of an input whose worker process died or timed out: NaN, like an invalid one."""
    return [math.nan] * width


def _property_row(smiles: object, names: tuple[str, ...]) -> list[float]:
    mol, _ = try_parse(smiles)
    if mol is None:
        return [math.nan] * len(names)
    return property_values(mol, names)


#: Properties built from shared terms (logP, SA, ring penalty): computed from the terms, each once per molecule.
_FROM_TERMS: dict[str, Callable[[float, float, float], float]] = {"plogp": _plogp, "plogp_norm": _plogp_norm}


def property_values(mol: Chem.Mol, names: Sequence[str]) -> list[float]:
    """``[PROPERTIES[name](mol) for name in names]``, the same floats, with logP, SA and the ring
    penalty computed once per molecule however many of the names use them (SA is the costly one:
    ``sa``, ``plogp`` and ``plogp_norm`` would each compute it)."""
    terms: dict[str, float] = {}

    def term(key: str) -> float:
        if key not in terms:
            terms[key] = PROPERTIES[key](mol) if key != "cycle" else ring_size_penalty(mol)
        return terms[key]

    out = []
    for name in names:
        if name in _FROM_TERMS:
            out.append(_FROM_TERMS[name](term("logp"), term("sa"), term("cycle")))
        elif name in ("logp", "sa"):
            out.append(term(name))
        else:
            out.append(PROPERTIES[name](mol))
    return out


def canonical_with_properties(smiles: str | None, names: Sequence[str]) -> tuple[str | None, list[float] | None]:
    """``(canonical_smiles(smiles), compute_properties([that], names) row)``, parsing once where it can.

    RDKit canonical SMILES are almost always a fixed point; when the canonical form equals the
    input, the molecule already parsed from it is the one the canonical string would parse to, so
    its properties are computed from it. ``(None, None)`` for an invalid input.
    """
    mol, _ = try_parse(smiles) if smiles else (None, None)
    if mol is None:
        return None, None
    canonical = Chem.MolToSmiles(mol)
    if canonical != smiles:
        return canonical, _property_row(canonical, tuple(names))
    return canonical, property_values(mol, names)


@functools.lru_cache(maxsize=1)
def _sascorer():
    """RDKit's SA-score module, from the ``rdkit.Contrib`` package or the Contrib folder."""
    try:
        return importlib.import_module("rdkit.Contrib.SA_Score.sascorer")
    except ImportError:
        path = os.path.join(RDConfig.RDContribDir, "SA_Score", "sascorer.py")
        if not os.path.exists(path):
            raise ConfigError(
                f"RDKit's SA_Score contribution is missing (looked in {path}); "
                "install the rdkit wheel from PyPI"
            ) from None
        spec = importlib.util.spec_from_file_location("_molgen_sascorer", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
