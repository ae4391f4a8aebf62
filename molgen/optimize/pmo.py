"""The RDKit-only goal-directed tasks of PMO (Gao et al. 2022, "Sample efficiency matters") and the AUC metric.

PMO scores molecular optimizers on GuacaMol-style oracles (Brown et al. 2019,
as implemented in TDC) under a budget of 10,000 oracle calls, by the area under
the curve of the mean of the 10 best scores against calls. This module
implements the 20 tasks that need only RDKit, from their published definitions
(targets, fingerprints, score modifiers), and :func:`auc_top_k`.

* Fingerprints are RDKit *count* fingerprints (ECFP4/6, FCFP4, atom pairs with
  ``maxDistance=10``) and the Gobbi 2D pharmacophore fingerprint (PHCO);
  similarity is Tanimoto.
* The four formula tasks (``isomers_*``, ``zaleplon_mpo``, ``sitagliptin_mpo``)
  use TDC's "prev" isomer rule, the one PMO's published numbers were computed
  with: per-element counts are right, but the total-atoms term reads the
  canonical SMILES string as if it were a formula (``Cl``, ``Cc2`` ... count as
  one "element" with that number). The GuacaMol-faithful rule (total = all
  atoms with hydrogens) is available as ``<task>_fixed``.
* An invalid molecule scores 0, as in PMO.

Every task is an objective term ``pmo:<task>``::

    >>> from molgen.optimize.pmo import score
    >>> score("celecoxib_rediscovery", ["CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"])
    [1.0]
    >>> round(score("qed", ["CCO"])[0], 4)
    0.4068
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence

import numpy as np
from rdkit import Chem, DataStructs, RDLogger
from rdkit.Chem import Descriptors, rdMolDescriptors
from rdkit.Chem import rdFingerprintGenerator as fpgen
from rdkit.Chem.Pharm2D import Generate, Gobbi_Pharm2D

from molgen import chem
from molgen.errors import ConfigError
from molgen.optimize.objectives import register_term_prefix

__all__ = ["PMO_TASKS", "EXTRA_TASKS", "PMOTask", "get_task", "score", "auc_top_k", "top_k_points"]

Term = Callable[[Chem.Mol, str], float]  # (molecule, its canonical SMILES) -> value in [0, 1]

# -- fingerprints and similarity -------------------------------------------------


@functools.lru_cache(maxsize=None)
def _generator(kind: str):
    if kind == "ECFP4":
        return fpgen.GetMorganGenerator(radius=2)
    if kind == "ECFP6":
        return fpgen.GetMorganGenerator(radius=3)
    if kind == "FCFP4":
        return fpgen.GetMorganGenerator(radius=2, atomInvariantsGenerator=fpgen.GetMorganFeatureAtomInvGen())
    if kind == "AP":
        return fpgen.GetAtomPairGenerator(maxDistance=10)
    raise ConfigError(f"unknown fingerprint {kind!r}")


def _fingerprint(mol: Chem.Mol, kind: str):
    if kind == "PHCO":
        return Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory)
    # Unhashed sparse counts: the same values as RDKit's legacy GetMorganFingerprint / GetAtomPairFingerprint.
    return _generator(kind).GetSparseCountFingerprint(mol)


# -- score modifiers (GuacaMol's definitions) ------------------------------------


def _gaussian(mu: float, sigma: float) -> Callable[[float], float]:
    return lambda x: math.exp(-0.5 * ((x - mu) / sigma) ** 2)


def _min_gaussian(mu: float, sigma: float) -> Callable[[float], float]:
    """1 at or below ``mu``; a Gaussian fall-off above (rewards low values)."""
    return lambda x: 1.0 if x <= mu else _gaussian(mu, sigma)(x)


def _max_gaussian(mu: float, sigma: float) -> Callable[[float], float]:
    """1 at or above ``mu``; a Gaussian fall-off below (rewards high values)."""
    return lambda x: 1.0 if x >= mu else _gaussian(mu, sigma)(x)


def _clipped(upper: float) -> Callable[[float], float]:
    return lambda x: min(max(x / upper, 0.0), 1.0)


def _raw(x: float) -> float:
    return x


# -- terms -----------------------------------------------------------------------


def _mol(smiles: str) -> Chem.Mol:
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ConfigError(f"task definition holds an invalid SMILES {smiles!r}")
    return mol


def _similarity(target: str, kind: str, modifier: Callable[[float], float] = _raw) -> Term:
    reference = _fingerprint(_mol(target), kind)
    return lambda mol, _: modifier(DataStructs.TanimotoSimilarity(_fingerprint(mol, kind), reference))


def _descriptor(func: Callable[[Chem.Mol], float], modifier: Callable[[float], float]) -> Term:
    return lambda mol, _: modifier(float(func(mol)))


def _smarts(pattern: str, present: bool) -> Term:
    query = Chem.MolFromSmarts(pattern)
    return lambda mol, _: float(mol.HasSubstructMatch(query) == present)


def _atom_count(mol: Chem.Mol, element: str) -> int:
    if element == "H":
        mol = Chem.AddHs(mol)
    return sum(1 for atom in mol.GetAtoms() if atom.GetSymbol() == element)


def _formula_counts(text: str) -> list[tuple[str, int]]:
    """``C7H8N2O2`` -> [(C, 7), (H, 8), (N, 2), (O, 2)]. Applied to a SMILES string this is TDC's "prev" total."""
    return [(element, int(count) if count else 1) for element, count in re.findall(r"([A-Z][a-z]*)(\d*)", text)]


def _isomer(formula: str, rule: str = "prev") -> Term:
    """Geometric mean of Gaussian(n, 1) per element of ``formula`` and Gaussian(total, 2) on the atom total."""
    counts = _formula_counts(formula)
    per_element = [(element, _gaussian(n, 1.0)) for element, n in counts]
    total_mod = _gaussian(sum(n for _, n in counts), 2.0)

    def term(mol: Chem.Mol, smiles: str) -> float:
        values = [mod(_atom_count(mol, element)) for element, mod in per_element]
        if rule == "prev":  # PMO's numbers: the SMILES string parsed as a formula (see the module docstring)
            total = sum(n for _, n in _formula_counts(smiles))
        else:
            total = Chem.AddHs(mol).GetNumAtoms()
        values.append(total_mod(total))
        return _geometric(values)

    return term


def _geometric(values: Sequence[float]) -> float:
    if min(values) <= 0:
        return 0.0
    return float(math.exp(sum(math.log(v) for v in values) / len(values)))


def _arithmetic(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


# -- tasks -----------------------------------------------------------------------


class PMOTask:
    """One task: a list of terms and how they combine; ``task(smiles_list) -> scores`` (invalid: 0)."""

    def __init__(self, name: str, terms: list[Term], combine: Callable[[Sequence[float]], float] = _geometric) -> None:
        self.name, self.terms, self.combine = name, terms, combine

    def score_mol(self, mol: Chem.Mol) -> float:
        smiles = Chem.MolToSmiles(mol)
        values = [term(mol, smiles) for term in self.terms]
        return float(values[0]) if len(values) == 1 else self.combine(values)

    def __call__(self, smiles: Sequence[str]) -> list[float]:
        out = []
        for s in smiles:
            mol = Chem.MolFromSmiles(s) if s else None
            out.append(0.0 if mol is None else self.score_mol(mol))
        return out

    def __repr__(self) -> str:
        return f"PMOTask({self.name!r})"


CELECOXIB = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F"
TROGLITAZONE = "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O"
THIOTHIXENE = "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1"
ALBUTEROL = "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1"
MESTRANOL = "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1"
AMLODIPINE = r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC"
FEXOFENADINE = "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4"
OSIMERTINIB = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34"
PERINDOPRIL = "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC"
RANOLAZINE = "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2"
SITAGLIPTIN = "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F"
ZALEPLON = "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1"
CAMPHOR, MENTHOL = "CC1(C)C2CCC1(C)C(=O)C2", "CC(C)C1CCC(C)CC1O"
TADALAFIL = "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C"
SILDENAFIL = "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C"
DECO_TARGET = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C"
HOP_SCAFFOLD = "[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12"

_logp, _tpsa, _bertz = Descriptors.MolLogP, Descriptors.TPSA, Descriptors.BertzCT


def _sitagliptin(rule: str) -> list[Term]:
    target = _mol(SITAGLIPTIN)
    return [
        _similarity(SITAGLIPTIN, "ECFP4", _gaussian(0.0, 0.1)),
        _descriptor(_logp, _gaussian(_logp(target), 0.2)),
        _descriptor(_tpsa, _gaussian(_tpsa(target), 5.0)),
        _isomer("C16H15F6N5O", rule),
    ]


def _valsartan() -> list[Term]:
    target = _mol("NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F")
    return [
        _smarts("CN(C=O)Cc1ccc(c2ccccc2)cc1", present=True),
        _descriptor(_logp, _gaussian(_logp(target), 0.2)),
        _descriptor(_tpsa, _gaussian(_tpsa(target), 5.0)),
        _descriptor(_bertz, _gaussian(_bertz(target), 30.0)),
    ]


# name -> (terms factory, combine). Factories run on first use (PHCO targets are slow to build).
_DEFINITIONS: dict[str, tuple[Callable[[], list[Term]], Callable[[Sequence[float]], float]]] = {
    "albuterol_similarity": (lambda: [_similarity(ALBUTEROL, "FCFP4", _clipped(0.75))], _geometric),
    "amlodipine_mpo": (
        lambda: [_similarity(AMLODIPINE, "ECFP4"), _descriptor(rdMolDescriptors.CalcNumRings, _gaussian(3, 0.5))],
        _geometric,
    ),
    "celecoxib_rediscovery": (lambda: [_similarity(CELECOXIB, "ECFP4")], _geometric),
    "deco_hop": (
        lambda: [
            _similarity(DECO_TARGET, "PHCO", _clipped(0.85)),
            _smarts("CS([#6])(=O)=O", present=False),
            _smarts("[#7]-c1ccc2ncsc2c1", present=False),
            _smarts(HOP_SCAFFOLD, present=True),
        ],
        _arithmetic,
    ),
    "fexofenadine_mpo": (
        lambda: [
            _similarity(FEXOFENADINE, "AP", _clipped(0.8)),
            _descriptor(_tpsa, _max_gaussian(90, 10)),
            _descriptor(_logp, _min_gaussian(4, 1)),
        ],
        _geometric,
    ),
    "isomers_c7h8n2o2": (lambda: [_isomer("C7H8N2O2", "prev")], _geometric),
    "isomers_c9h10n2o2pf2cl": (lambda: [_isomer("C9H10N2O2PF2Cl", "prev")], _geometric),
    "median1": (lambda: [_similarity(CAMPHOR, "ECFP4"), _similarity(MENTHOL, "ECFP4")], _geometric),
    "median2": (lambda: [_similarity(TADALAFIL, "ECFP6"), _similarity(SILDENAFIL, "ECFP6")], _geometric),
    "mestranol_similarity": (lambda: [_similarity(MESTRANOL, "AP", _clipped(0.75))], _geometric),
    "osimertinib_mpo": (
        lambda: [
            _similarity(OSIMERTINIB, "FCFP4", _clipped(0.8)),
            _similarity(OSIMERTINIB, "ECFP6", _min_gaussian(0.85, 0.1)),
            _descriptor(_tpsa, _max_gaussian(100, 10)),
            _descriptor(_logp, _min_gaussian(1, 1)),
        ],
        _geometric,
    ),
    "perindopril_mpo": (
        lambda: [_similarity(PERINDOPRIL, "ECFP4"), _descriptor(rdMolDescriptors.CalcNumAromaticRings, _gaussian(2, 0.5))],
        _geometric,
    ),
    "qed": (lambda: [_descriptor(chem.qed, _raw)], _geometric),
    "ranolazine_mpo": (
        lambda: [
            _similarity(RANOLAZINE, "AP", _clipped(0.7)),
            _descriptor(_tpsa, _max_gaussian(95, 20)),
            _descriptor(_logp, _max_gaussian(7, 1)),
            _descriptor(lambda m: _atom_count(m, "F"), _gaussian(1, 1)),
        ],
        _geometric,
    ),
    "scaffold_hop": (
        lambda: [
            _similarity(DECO_TARGET, "PHCO", _clipped(0.75)),
            _smarts("[#6]-[#6]-[#6]-[#8]-[#6]~[#6]~[#6]~[#6]~[#6]-[#7]-c1ccc2ncsc2c1", present=True),
            _smarts(HOP_SCAFFOLD, present=False),
        ],
        _arithmetic,
    ),
    "sitagliptin_mpo": (lambda: _sitagliptin("prev"), _geometric),
    "thiothixene_rediscovery": (lambda: [_similarity(THIOTHIXENE, "ECFP4")], _geometric),
    "troglitazone_rediscovery": (lambda: [_similarity(TROGLITAZONE, "ECFP4")], _geometric),
    "valsartan_smarts": (_valsartan, _geometric),
    "zaleplon_mpo": (lambda: [_similarity(ZALEPLON, "ECFP4"), _isomer("C19H17N3O2", "prev")], _geometric),
    # GuacaMol-faithful isomer rule; not in PMO's published numbers.
    "isomers_c7h8n2o2_fixed": (lambda: [_isomer("C7H8N2O2", "fixed")], _geometric),
    "isomers_c9h10n2o2pf2cl_fixed": (lambda: [_isomer("C9H10N2O2PF2Cl", "fixed")], _geometric),
    "sitagliptin_mpo_fixed": (lambda: _sitagliptin("fixed"), _geometric),
    "zaleplon_mpo_fixed": (lambda: [_similarity(ZALEPLON, "ECFP4"), _isomer("C19H17N3O2", "fixed")], _geometric),
}

#: The 20 RDKit-only PMO tasks, in the order of PMO's tables.
PMO_TASKS: tuple[str, ...] = tuple(n for n in _DEFINITIONS if not n.endswith("_fixed"))
#: Variants outside PMO's published numbers.
EXTRA_TASKS: tuple[str, ...] = tuple(n for n in _DEFINITIONS if n.endswith("_fixed"))


@functools.lru_cache(maxsize=None)
def get_task(name: str) -> PMOTask:
    """The task called ``name`` (one of :data:`PMO_TASKS` or :data:`EXTRA_TASKS`)."""
    if name not in _DEFINITIONS:
        raise ConfigError(f"unknown PMO task {name!r}; available: {', '.join(PMO_TASKS + EXTRA_TASKS)}")
    factory, combine = _DEFINITIONS[name]
    return PMOTask(name, factory(), combine)


def score(name: str, smiles: Sequence[str]) -> list[float]:
    """Scores of ``smiles`` on task ``name`` (0 for invalid SMILES)."""
    RDLogger.DisableLog("rdApp.*")
    return get_task(name)(smiles)


# -- the AUC top-k metric ------------------------------------------------------


def top_k_points(scores: Sequence[float], k: int = 10, freq: int = 100, budget: int = 10_000) -> tuple[np.ndarray, np.ndarray]:
    """The logged points of PMO's top-k curve: calls (every ``freq``, plus the last) and the mean top-k there.

    ``scores`` are in call order; NaN (a failed call) counts as 0, as an invalid molecule does in PMO.
    """
    values = np.nan_to_num(np.asarray(scores, dtype=float)[:budget], nan=0.0)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    calls = np.array([*range(freq, n, freq), n])
    means = np.array([np.sort(values[:c])[::-1][:k].mean() for c in calls])
    return calls, means


def auc_top_k(scores: Sequence[float], budget: int = 10_000, k: int = 10, freq: int = 100, finish: bool = True) -> float:
    """PMO's AUC top-k: the trapezoid area under the logged top-k curve (from 0 at call 0), over ``budget``.

    With ``finish`` a run that stopped before ``budget`` calls has its last value held flat to
    ``budget`` (as in mol_opt); without it the area covers only the calls made (still divided by
    ``budget``). The result is in
    [0, 1] for scores in [0, 1]. For a run of ``n < budget`` calls, ``n`` a multiple of ``freq``
    (and ``freq >= k``), ``auc_top_k(scores, budget=n)`` is a lower bound on what the same run would
    get if continued to ``budget`` calls, because the logged curve never decreases.
    """
    if budget < 1:
        raise ConfigError("the AUC budget must be at least 1 call")
    calls, means = top_k_points(scores, k, freq, budget)
    area, last_call, last_mean = 0.0, 0, 0.0
    for c, m in zip(calls, means):
        area += (c - last_call) * (m + last_mean) / 2
        last_call, last_mean = int(c), float(m)
    if finish and last_call < budget:
        area += (budget - last_call) * last_mean
    return float(area / budget)


def _pmo_term(arg: str):
    name = arg.strip()
    task = get_task(name)
    RDLogger.DisableLog("rdApp.*")
    return f"pmo:{name}", task


register_term_prefix("pmo", _pmo_term)
