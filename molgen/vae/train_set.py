"""The molecules a model was trained on, as its checkpoint remembers them (for novelty and fitted priors).

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> train = training_smiles(MoleculeVAE.load(), fetch=False)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["training_smiles"]


def training_smiles(vae, fetch: bool = True) -> list[str] | None:
    """The molecules a model was trained on, as its checkpoint remembers them (for novelty).

    ``moses-train`` resolves to the cached MOSES training set; a file name is
    looked up next to the checkpoint. Returns ``None`` when the set is unknown
    or not available locally. ``fetch``: download the MOSES sets when missing
    (:func:`molgen.datasets.moses_split`); without it a missing set raises DataError.
    """
    name = vae.meta.get("train_set")
    if not name:
        return None
    if name == "moses-train":
        import gzip

        from molgen.datasets import moses_split

        with gzip.open(moses_split("train", fetch=fetch), "rt") as fh:
            return [line.strip() for line in fh][1:]
    path = Path(vae.meta.get("path", ".")).parent / name
    if not path.exists():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
