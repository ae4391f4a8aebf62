"""molgen: molecular design with deep generative models.

Train a sequence VAE on SMILES or SELFIES, sample RDKit-checked molecules,
optimise molecules in the latent space and benchmark generators with the
MOSES metrics.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
