"""Morgan fingerprints and Tanimoto similarity.

Morgan (circular, ECFP-like) fingerprints (Rogers & Hahn, 2010, *J. Chem. Inf.
Model.* 50:742) are made with RDKit's ``rdFingerprintGenerator``; radius 2 and
2048 bits are the settings of the MOSES similarity metrics (SNN, internal
diversity; Polykovskiy et al., 2020).

Two representations are supported: RDKit ``ExplicitBitVect`` objects for
:func:`tanimoto` and :func:`bulk_tanimoto`, and dense ``uint8`` 0/1 matrices
from :func:`fingerprint_array` for the vectorised :func:`tanimoto_matrix`.

Example::

    >>> fps = fingerprint_array(["CCO", "CCN"])
    >>> fps.shape, fps.dtype
    ((2, 2048), dtype('uint8'))
    >>> float(tanimoto_matrix(fps)[0, 0])
    1.0
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np
from rdkit import Chem, DataStructs
from rdkit.Chem import rdFingerprintGenerator

from molgen.chem._pool import pmap
from molgen.chem.molecules import parse_smiles, try_parse

__all__ = [
    "morgan_fingerprint",
    "fingerprint_array",
    "tanimoto",
    "bulk_tanimoto",
    "tanimoto_matrix",
]


def morgan_fingerprint(
    mol: Chem.Mol | str, radius: int = 2, n_bits: int = 2048
) -> DataStructs.ExplicitBitVect:
    """Morgan fingerprint bit vector of a molecule (or a SMILES string).

    Raises:
        InvalidSmilesError: ``mol`` is a string that does not parse.
    """
    if not isinstance(mol, Chem.Mol):
        mol = parse_smiles(mol)
    return _generator(radius, n_bits).GetFingerprint(mol)


def fingerprint_array(
    mols_or_smiles: Iterable[Chem.Mol | str],
    radius: int = 2,
    n_bits: int = 2048,
    n_jobs: int | None = None,
) -> np.ndarray:
    """Morgan fingerprints as a dense ``(n, n_bits)`` ``uint8`` 0/1 matrix.

    Large inputs are fingerprinted in a process pool.

    Raises:
        InvalidSmilesError: an input string is not a valid SMILES (filter
            with :func:`molgen.chem.is_valid` first).
    """
    items = list(mols_or_smiles)
    if not items:
        return np.zeros((0, n_bits), dtype=np.uint8)
    row_func = functools.partial(_packed_row, radius=radius, n_bits=n_bits)
    packed = pmap(row_func, items, n_jobs=n_jobs)
    for item, row in zip(items, packed):
        if row is None:
            # Raised here rather than in the worker: our error type does not
            # survive pickling across the process boundary.
            parse_smiles(item)
    return np.unpackbits(np.stack(packed), axis=1, count=n_bits)


def tanimoto(fp_a: DataStructs.ExplicitBitVect, fp_b: DataStructs.ExplicitBitVect) -> float:
    """Tanimoto (Jaccard) similarity of two bit vectors; 0 when both are empty."""
    return float(DataStructs.TanimotoSimilarity(fp_a, fp_b))


def bulk_tanimoto(
    fp: DataStructs.ExplicitBitVect, fps: list[DataStructs.ExplicitBitVect]
) -> np.ndarray:
    """Tanimoto similarity of ``fp`` to each of ``fps``, as a float64 array."""
    return np.asarray(DataStructs.BulkTanimotoSimilarity(fp, list(fps)), dtype=np.float64)


def tanimoto_matrix(a: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    """All-pairs Tanimoto similarity of the rows of two 0/1 bit matrices.

    Args:
        a: ``(n, d)`` array of 0/1 values (any integer, bool or float dtype).
        b: ``(m, d)`` array; ``None`` means ``a`` itself.

    Returns:
        ``(n, m)`` float32 array; pairs of two empty fingerprints get 0, as in
        RDKit. Memory is ``O(n m)``: split large inputs into row blocks.
    """
    a32 = _as_bits(a)
    b32 = a32 if b is None else _as_bits(b)
    if a32.shape[1] != b32.shape[1]:
        raise ValueError(f"fingerprint lengths differ: {a32.shape[1]} vs {b32.shape[1]} bits")
    # float32 matmul counts shared bits exactly up to 2**24 bits per row.
    common = a32 @ b32.T
    union = a32.sum(axis=1)[:, None] + b32.sum(axis=1)[None, :] - common
    return np.divide(common, union, out=np.zeros_like(common), where=union > 0)


def _as_bits(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (molecules x bits) array, got shape {x.shape}")
    return x.astype(np.float32, copy=False)


def _packed_row(item: Chem.Mol | str, radius: int, n_bits: int) -> np.ndarray | None:
    # Bits are packed 8 to a byte so workers send an eighth of the data back.
    mol = item if isinstance(item, Chem.Mol) else try_parse(item)[0]
    if mol is None:
        return None
    return np.packbits(_generator(radius, n_bits).GetFingerprintAsNumPy(mol).astype(bool))


@functools.lru_cache(maxsize=8)
def _generator(radius: int, n_bits: int) -> rdFingerprintGenerator.FingerprintGenerator64:
    return rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
