"""What the metrics compare between two molecule sets: :class:`SetStatistics`, saved as ``.npz`` without pickles.

Kept apart from :mod:`molgen.metrics.reference` (which computes and caches
them) so that the readers of MOSES's shipped statistics
(:mod:`molgen.metrics.moses_stats`) can build one without importing the cache.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from molgen.utils.io import load_npz_arrays

__all__ = ["METRICS_VERSION", "SetStatistics"]

#: Bump when a definition changes, so cached reference statistics are rebuilt.
METRICS_VERSION = "1"


@dataclass
class SetStatistics:
    """Statistics of one molecule set (see the module docstring)."""

    n_molecules: int
    counts: np.ndarray
    fingerprints: np.ndarray
    properties: np.ndarray
    passes_filters: np.ndarray
    fcd_mu: np.ndarray
    fcd_sigma: np.ndarray
    fragment_keys: np.ndarray
    fragment_counts: np.ndarray
    scaffold_keys: np.ndarray
    scaffold_counts: np.ndarray
    kl_descriptors: np.ndarray
    kl_max_similarity: np.ndarray

    def save(self, path: Path) -> None:
        """Write the statistics to ``path`` atomically, as an ``.npz`` without pickles."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self)}
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
            np.savez(handle, **arrays)
        # Temporary files are private (0600); a cache file gets the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        os.replace(handle.name, path)

    @classmethod
    def load(cls, path: Path) -> SetStatistics:
        """Read statistics written by :meth:`save`."""
        names = [f.name for f in fields(cls)]
        values = load_npz_arrays(path, names, "a molgen statistics file", "delete it; molgen computes the statistics again")
        values["n_molecules"] = int(values["n_molecules"])
        return cls(**values)
