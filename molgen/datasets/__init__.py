"""Molecule data: robust file reading, embedded and MOSES sets, splits, torch batching.

The readers and data helpers import no torch; :class:`SequenceDataset`,
:class:`BucketBatchSampler` and :func:`collate_padded` live in
:mod:`molgen.datasets.torch_data` and are imported from there on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from molgen.datasets.embedded import (
    EMBEDDED_FILES,
    default_test_smiles,
    default_training_smiles,
    embedded_data_path,
)
from molgen.datasets.moses import (
    MOSES_FILES,
    MOSES_VERSION,
    default_cache_dir,
    materialize_moses,
    moses_split,
)
from molgen.datasets.readers import (
    SMILES_COLUMN_NAMES,
    ReadResult,
    read_molecules,
    write_smiles,
)
from molgen.datasets.splits import train_val_split

__all__ = [
    "ReadResult",
    "read_molecules",
    "write_smiles",
    "SMILES_COLUMN_NAMES",
    "EMBEDDED_FILES",
    "embedded_data_path",
    "default_training_smiles",
    "default_test_smiles",
    "MOSES_FILES",
    "MOSES_VERSION",
    "default_cache_dir",
    "materialize_moses",
    "moses_split",
    "train_val_split",
    "SequenceDataset",
    "BucketBatchSampler",
    "collate_padded",
]

_TORCH_NAMES = frozenset({"SequenceDataset", "BucketBatchSampler", "collate_padded"})


def __getattr__(name: str) -> Any:
    # Lazy so that reading molecules does not pay for importing torch.
    if name in _TORCH_NAMES:
        return getattr(importlib.import_module("molgen.datasets.torch_data"), name)
    raise AttributeError(f"module 'molgen.datasets' has no attribute {name!r}")
