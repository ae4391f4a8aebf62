"""Models: the sequence VAEs (GRU and Transformer) and latent property predictor for molecules; ``image`` holds the image models."""

from __future__ import annotations

from molgen.models.build import build_seq_vae
from molgen.models.predictor import LatentPredictor, LatentPredictorConfig
from molgen.models.seq_vae import (
    SeqVAE,
    SeqVAEBase,
    SeqVAEConfig,
    VAEOutput,
)
from molgen.models.transformer_vae import TransformerVAE

__all__ = [
    "LatentPredictor",
    "LatentPredictorConfig",
    "SeqVAE",
    "SeqVAEBase",
    "SeqVAEConfig",
    "TransformerVAE",
    "VAEOutput",
    "build_seq_vae",
]
