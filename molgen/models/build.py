"""Build the sequence VAE that a config's ``arch`` names (GRU or Transformer).

Kept apart from both model modules so that neither imports the other: the
Transformer builds on :class:`~molgen.models.seq_vae.SeqVAEBase`, and this is
the one place that knows every architecture.

Example::

    >>> from molgen.models.seq_vae import SeqVAEConfig
    >>> type(build_seq_vae(SeqVAEConfig(vocab_size=30, arch="transformer"))).__name__
    'TransformerVAE'
"""

from __future__ import annotations

from molgen.models.seq_vae import SeqVAE, SeqVAEBase, SeqVAEConfig
from molgen.models.transformer_vae import TransformerVAE

__all__ = ["build_seq_vae"]


def build_seq_vae(config: SeqVAEConfig) -> SeqVAEBase:
    """The model class that ``config.arch`` names, built from ``config``."""
    if config.arch == "transformer":
        return TransformerVAE(config)
    return SeqVAE(config)
