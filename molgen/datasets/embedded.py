"""The molecule sets shipped in the repository's ``data/`` folder.

``data/moses_train_50k.smi.gz`` and ``data/moses_test_5k.smi.gz`` are seeded
random samples of the MOSES train and test splits (provenance, licence and
the script that made them: ``data/README.md``). They let training and the
tests run with no download. The folder sits at the repository root and the
wheel installs it as ``molgen/_data`` (:func:`molgen.pretrained.data_dir`).
"""

from __future__ import annotations

import gzip
from pathlib import Path

from molgen.errors import ConfigError, DataError

__all__ = ["EMBEDDED_FILES", "embedded_data_path", "default_training_smiles", "default_test_smiles"]

#: Name -> file in ``data/``.
EMBEDDED_FILES: dict[str, str] = {
    "train": "moses_train_50k.smi.gz",
    "test": "moses_test_5k.smi.gz",
}


def embedded_data_path(name: str = "train") -> Path:
    """Path of an embedded set (``"train"`` or ``"test"``)."""
    if name not in EMBEDDED_FILES:
        raise ConfigError(f"unknown embedded set {name!r}; choose one of {sorted(EMBEDDED_FILES)}")
    from molgen.pretrained import data_file

    return data_file(EMBEDDED_FILES[name])


def default_training_smiles(limit: int | None = None) -> list[str]:
    """The 50,000 embedded MOSES training SMILES (the first ``limit`` if given)."""
    return _read_lines(embedded_data_path("train"), limit)


def default_test_smiles(limit: int | None = None) -> list[str]:
    """The 5,000 embedded MOSES test SMILES (the first ``limit`` if given)."""
    return _read_lines(embedded_data_path("test"), limit)


def _read_lines(path: Path, limit: int | None) -> list[str]:
    # The files are curated MOSES SMILES, so they are not re-validated here.
    out: list[str] = []
    try:
        with gzip.open(path, "rt", encoding="ascii") as fh:
            for line in fh:
                if limit is not None and len(out) >= limit:
                    break
                if text := line.strip():
                    out.append(text)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"embedded data file {path} is damaged ({exc}); restore it with git checkout or re-run scripts/make_embedded_data.py") from None
    return out
