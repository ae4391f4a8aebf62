"""Per-molecule featurisation for the MOSES metrics (runs in worker processes).

Each function here takes one SMILES string and returns plain, picklable Python
values, so :func:`molgen.chem.pmap` can ship them across processes cheaply.
The definitions follow the MOSES reference code (Polykovskiy et al. 2020,
*Front. Pharmacol.* 11:565644) exactly:

* canonical form: RDKit canonical isomeric SMILES; every later feature is
  computed on the molecule re-parsed from that canonical SMILES, as MOSES does;
* fingerprints: Morgan radius 2, 1024 bits (SNN and IntDiv);
* fragments: the canonical SMILES pieces of ``FragmentOnBRICSBonds``;
* scaffolds: Bemis--Murcko scaffolds with at least two rings;
* filters: no ring of eight or more atoms, no formal charge, only
  C N S O F Cl Br H, no MCF or PAINS match (on the molecule with explicit
  hydrogens), and a non-isomeric SMILES that re-parses;
* properties: Crippen logP, SA score, QED and average molecular weight.

The GuacaMol KL features (Brown et al. 2019, *J. Chem. Inf. Model.* 59:1096)
are nine RDKit descriptors and a 4096-bit ECFP4 fingerprint.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from typing import NamedTuple

import numpy as np
from rdkit import Chem, DataStructs, rdBase
from rdkit.Chem import Descriptors, rdFingerprintGenerator
from rdkit.Chem.Scaffolds import MurckoScaffold

from molgen import chem

__all__: list[str] = []

FP_BITS = 1024
KL_FP_BITS = 4096
KL_DESCRIPTORS: tuple[str, ...] = (
    "BertzCT",
    "MolLogP",
    "MolWt",
    "TPSA",
    "NumHAcceptors",
    "NumHDonors",
    "NumRotatableBonds",
    "NumAliphaticRings",
    "NumAromaticRings",
)
#: The first four KL descriptors are continuous (KDE), the rest integer counts.
KL_N_CONTINUOUS = 4
PROPERTY_NAMES: tuple[str, ...] = ("logP", "SA", "QED", "weight")

_ALLOWED_ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})
_MIN_SCAFFOLD_RINGS = 2
_MAX_RING_SIZE = 7
_SCREEN_BITS = 2048


class Canonical(NamedTuple):
    """Result of the first pass: canonical and stereo-free SMILES, or ``None``."""

    smiles: str | None
    flat: str | None


class MolFeatures(NamedTuple):
    """Everything the MOSES metrics need from one unique valid molecule."""

    fcd_smiles: str
    fingerprint: bytes  # packed FP_BITS bits
    fragments: tuple[str, ...]
    scaffold: str | None
    properties: tuple[float, float, float, float]  # PROPERTY_NAMES order
    passes_filters: bool


def canonicalize(smiles: object) -> Canonical:
    """Canonical isomeric and non-isomeric SMILES of one input (garbage -> None)."""
    with rdBase.BlockLogs():
        mol, _ = chem.try_parse(smiles)
        if mol is None:
            return Canonical(None, None)
        canonical = Chem.MolToSmiles(mol)
        if not canonical:
            return Canonical(None, None)
        return Canonical(canonical, Chem.MolToSmiles(mol, isomericSmiles=False))


def not_canonical(smiles: object, reason: str) -> Canonical:
    """:func:`canonicalize`'s result for an input whose worker process died or timed out: invalid."""
    return Canonical(None, None)


def fcd_input(canonical: str) -> str:
    """ChemNet's input for a canonical SMILES: fcd_torch canonicalises its (already canonical) input once more."""
    with rdBase.BlockLogs():
        return Chem.MolToSmiles(Chem.MolFromSmiles(canonical))


def featurize(canonical: str) -> MolFeatures:
    """MOSES features of a molecule given by its canonical SMILES."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(canonical)
        return MolFeatures(
            fcd_smiles=Chem.MolToSmiles(mol),  # what fcd_input(canonical) returns
            fingerprint=_packed_morgan(mol, FP_BITS),
            fragments=_brics_fragments(mol),
            scaffold=_scaffold(mol),
            properties=(chem.logp(mol), chem.sa_score(mol), chem.qed(mol), chem.mol_weight(mol)),
            passes_filters=_passes_filters(mol),
        )


def kl_featurize(flat_smiles: str) -> tuple[tuple[float, ...], bytes]:
    """GuacaMol KL descriptors and packed 4096-bit ECFP4 of a stereo-free SMILES."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(flat_smiles)
        values = []
        for name in KL_DESCRIPTORS:
            value = float(_descriptor_functions()[name](mol))
            # GuacaMol replaces non-finite descriptors by zero.
            values.append(value if np.isfinite(value) else 0.0)
        return tuple(values), _packed_morgan(mol, KL_FP_BITS)


def _packed_morgan(mol: Chem.Mol, n_bits: int) -> bytes:
    bits = _morgan_generator(n_bits).GetFingerprintAsNumPy(mol)
    return np.packbits(bits.astype(np.uint8)).tobytes()


@functools.cache
def _morgan_generator(n_bits: int) -> rdFingerprintGenerator.FingerprintGenerator64:
    # Same bits as the legacy GetMorganFingerprintAsBitVect(mol, 2, nBits) MOSES uses.
    return rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=n_bits)


def _brics_fragments(mol: Chem.Mol) -> tuple[str, ...]:
    pieces = Chem.FragmentOnBRICSBonds(mol)
    return tuple(Chem.MolToSmiles(pieces).split("."))


def _scaffold(mol: Chem.Mol) -> str | None:
    try:
        scaffold = MurckoScaffold.GetScaffoldForMol(mol)
    except (ValueError, RuntimeError):
        return None
    smiles = Chem.MolToSmiles(scaffold)
    if not smiles or scaffold.GetRingInfo().NumRings() < _MIN_SCAFFOLD_RINGS:
        return None
    return smiles


def _passes_filters(mol: Chem.Mol) -> bool:
    if any(len(ring) > _MAX_RING_SIZE for ring in mol.GetRingInfo().AtomRings()):
        return False
    for atom in mol.GetAtoms():
        if atom.GetFormalCharge() != 0 or atom.GetSymbol() not in _ALLOWED_ATOMS:
            return False
    with_h = Chem.AddHs(mol)
    patterns, screens = _filter_patterns()
    # A pattern can only match if its pattern-fingerprint bits are all set in
    # the molecule's (RDKit's substructure screen); this skips ~90% of the
    # ~500 substructure searches without changing any result.
    present = _fingerprint_bits(Chem.PatternFingerprint(with_h, fpSize=_SCREEN_BITS))
    candidates = np.flatnonzero(~(screens & ~present).any(axis=1))
    if any(with_h.HasSubstructMatch(patterns[i]) for i in candidates):
        return False
    flat = Chem.MolToSmiles(mol, isomericSmiles=False)
    return bool(flat) and Chem.MolFromSmiles(flat) is not None


@functools.cache
def _filter_patterns() -> tuple[tuple[Chem.Mol, ...], np.ndarray]:
    """MCF and PAINS SMARTS (see ``data/README.md``) and their screening bits."""
    patterns = tuple(Chem.MolFromSmarts(s.strip()) for _, s in _filter_rows())
    if any(p is None for p in patterns):
        raise RuntimeError(
            "a filter SMARTS in molgen/metrics/data does not parse; the package is damaged"
        )
    screens = np.stack(
        [_fingerprint_bits(Chem.PatternFingerprint(p, fpSize=_SCREEN_BITS)) for p in patterns]
    )
    return patterns, screens


@functools.cache
def _filter_rows() -> tuple[tuple[str, str], ...]:
    """``(name, SMARTS)`` of the MCF filters (``MCF1``...), then the PAINS ones (their ``regId``, ``anil_di_alk_F(14)``)."""
    data = resources.files("molgen.metrics") / "data"
    with (data / "mcf.csv").open(encoding="utf-8") as handle:
        rows = [(row["names"], row["smarts"]) for row in csv.DictReader(handle)]
    with (data / "wehi_pains.csv").open(encoding="utf-8") as handle:
        rows += [(row[1].strip().removeprefix("<regId=").removesuffix(">"), row[0]) for row in csv.reader(handle)]
    return tuple(rows)


def _filter_names() -> tuple[str, ...]:
    """Names of the :func:`_filter_patterns`, same order."""
    return tuple(name for name, _ in _filter_rows())


def _fingerprint_bits(fp: DataStructs.ExplicitBitVect) -> np.ndarray:
    bits = np.zeros(fp.GetNumBits(), dtype=np.uint8)
    DataStructs.ConvertToNumpyArray(fp, bits)
    return bits.astype(bool)


@functools.cache
def _descriptor_functions() -> dict:
    return dict(Descriptors.descList)
