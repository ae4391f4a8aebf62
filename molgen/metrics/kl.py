"""GuacaMol KL-divergence score (Brown et al. 2019, *J. Chem. Inf. Model.* 59:1096).

For nine RDKit descriptors (BertzCT, MolLogP, MolWt, TPSA -- continuous;
NumHAcceptors, NumHDonors, NumRotatableBonds, NumAliphaticRings,
NumAromaticRings -- integer) and for the internal similarity (each molecule's
highest ECFP4 4096-bit Tanimoto similarity to another molecule of its own set),
the KL divergence KL(generated || reference) is estimated:

* continuous values: Gaussian KDEs (Scott's bandwidth) of both sets evaluated
  on 1,000 evenly spaced points spanning both sets;
* integer values: a 10-bin density histogram of the reference, and one of the
  generated set on the same bins, with 1e-10 added to the reference bins.

The score is the mean of exp(-KL) over the ten terms, 1 for identical
distributions. GuacaMol samples 10,000 unique molecules (stereo removed) and a
random 10,000 of the reference; so does molgen.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import entropy, gaussian_kde

__all__ = ["kl_divergence_score", "KL_SAMPLE_SIZE"]

KL_SAMPLE_SIZE = 10_000
_GRID_POINTS = 1000
_HIST_BINS = 10
_HIST_FLOOR = 1e-10


def kl_divergence_score(
    generated_descriptors: np.ndarray,
    generated_max_similarity: np.ndarray,
    reference_descriptors: np.ndarray,
    reference_max_similarity: np.ndarray,
    n_continuous: int,
) -> float:
    """Mean exp(-KL) over the descriptor columns and the internal similarity.

    Args:
        generated_descriptors, reference_descriptors: ``(n, d)`` arrays.
        generated_max_similarity, reference_max_similarity: internal
            nearest-neighbour similarities of each set.
        n_continuous: the first ``n_continuous`` columns are continuous, the
            rest integer-valued.

    Returns:
        The score in [0, 1]; NaN if a KDE cannot be fitted (fewer than two
        distinct values in a set).
    """
    divergences = []
    for column in range(reference_descriptors.shape[1]):
        estimate = _continuous_kl if column < n_continuous else _discrete_kl
        divergences.append(
            estimate(reference_descriptors[:, column], generated_descriptors[:, column])
        )
    divergences.append(_continuous_kl(reference_max_similarity, generated_max_similarity))
    return float(np.mean(np.exp(-np.asarray(divergences))))


def _continuous_kl(reference: np.ndarray, generated: np.ndarray) -> float:
    try:
        ref_kde = gaussian_kde(reference)
        gen_kde = gaussian_kde(generated)
    except (np.linalg.LinAlgError, ValueError):
        warnings.warn(
            "KL score: a descriptor has fewer than two distinct values; KL is NaN", stacklevel=3
        )
        return float("nan")
    both = np.concatenate([reference, generated])
    grid = np.linspace(both.min(), both.max(), num=_GRID_POINTS)
    return float(entropy(gen_kde(grid), ref_kde(grid)))


def _discrete_kl(reference: np.ndarray, generated: np.ndarray) -> float:
    ref_hist, edges = np.histogram(reference, bins=_HIST_BINS, density=True)
    gen_hist, _ = np.histogram(generated, bins=edges, density=True)
    return float(entropy(gen_hist, ref_hist + _HIST_FLOOR))
