"""Models: the sequence VAE and latent property predictor for molecules; ``image`` holds the image models."""

from __future__ import annotations

from molgen.models.predictor import LatentPredictor, LatentPredictorConfig
from molgen.models.seq_vae import SeqVAE, SeqVAEConfig, VAEOutput

__all__ = ["LatentPredictor", "LatentPredictorConfig", "SeqVAE", "SeqVAEConfig", "VAEOutput"]
