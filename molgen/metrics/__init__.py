"""MOSES-compatible benchmark metrics of generated molecules.

Implements the metrics of MOSES (Polykovskiy et al. 2020, *Front. Pharmacol.*
11:565644) -- validity, uniqueness, novelty, FCD (Preuer et al. 2018), SNN,
fragment and scaffold similarity, internal diversity, filters and property
Wasserstein distances -- and GuacaMol's KL-divergence score (Brown et al.
2019), with the definitions of the reference code and vectorised
implementations. Reference-set statistics are cached on disk.

Example::

    >>> from molgen.metrics import compute_metrics
    >>> metrics = compute_metrics("samples.smi", reference="moses-test")  # doctest: +SKIP
    >>> metrics["FCD/Test"], metrics["fcd_sample_size"]  # doctest: +SKIP
"""

from molgen.metrics.compute import compute_metrics, load_generated, reference_suffix
from molgen.metrics.fcd import chemnet_activations, frechet_distance
from molgen.metrics.reference import (
    METRICS_VERSION,
    REFERENCE_NAMES,
    SetStatistics,
    default_cache_dir,
    read_smiles_file,
    reference_statistics,
)
from molgen.metrics.similarity import (
    estimated_internal_diversity,
    internal_diversity,
    nearest_similarity,
)

__all__ = [
    "compute_metrics",
    "load_generated",
    "reference_suffix",
    "reference_statistics",
    "read_smiles_file",
    "default_cache_dir",
    "SetStatistics",
    "METRICS_VERSION",
    "REFERENCE_NAMES",
    "chemnet_activations",
    "frechet_distance",
    "internal_diversity",
    "estimated_internal_diversity",
    "nearest_similarity",
]
