"""Models: the sequence VAE for molecules and (in ``image``) the image models."""

from __future__ import annotations

from molgen.models.seq_vae import SeqVAE, SeqVAEConfig, VAEOutput

__all__ = ["SeqVAE", "SeqVAEConfig", "VAEOutput"]
