"""The molecular VAE as users hold it: a trained network with its vocabulary and tokenizer.

:class:`MoleculeVAE` (in :mod:`molgen.vae.bundle`) loads and saves checkpoints
and encodes and decodes molecules; :mod:`molgen.vae.training` trains one on a
list of SMILES; :mod:`molgen.vae.init_from` starts a fine-tune from a
checkpoint's architecture.

>>> from molgen.vae import MoleculeVAE  # doctest: +SKIP
>>> vae = MoleculeVAE.load("default")  # doctest: +SKIP
"""

from molgen.vae.bundle import (
    DEFAULT_MODEL,
    MoleculeVAE,
    ReconstructionResult,
    resolve_model_path,
    strings_to_smiles,
)
from molgen.vae.train_set import training_smiles

__all__ = [
    "MoleculeVAE",
    "ReconstructionResult",
    "resolve_model_path",
    "DEFAULT_MODEL",
    "strings_to_smiles",
    "training_smiles",
]
