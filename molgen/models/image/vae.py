"""Convolutional VAE, beta-VAE and conditional VAE for images.

- VAE: Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
- beta-VAE: Higgins et al., "beta-VAE: Learning Basic Visual Concepts with a
  Constrained Variational Framework", ICLR 2017 (``beta`` weights the KL term).
- Conditional VAE: Sohn et al., "Learning Structured Output Representation
  using Deep Conditional Generative Models", NeurIPS 2015 (the label, one-hot,
  is given to both encoder and decoder).
- Importance-weighted NLL bound: Burda et al., "Importance Weighted
  Autoencoders", ICLR 2016.

Reconstruction is ``bce`` (Bernoulli likelihood of grey levels in [0, 1], as
in pytorch/examples' VAE, so its nats are comparable) or ``mse`` (Gaussian with
variance 1/2, i.e. the summed squared error). Losses are summed over pixels
and averaged over the batch, so they read in nats per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.models.image.layers import (
    ConvDecoder,
    ConvEncoder,
    check_shape,
    label_planes,
    one_hot,
)

__all__ = ["VAEConfig", "ConvVAE", "VAEOutput"]


@dataclass
class VAEConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 16
    hidden: int = 32
    beta: float = 1.0  # KL weight; >1 is beta-VAE (disentangling), 1 is the true ELBO
    recon: Literal["bce", "mse"] = "bce"
    num_classes: int = 0  # > 0 makes it a conditional VAE

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "VAEConfig")
        if self.recon not in ("bce", "mse"):
            raise ConfigError(f"recon must be bce or mse, not {self.recon!r}")
        if self.latent_dim < 1 or self.hidden < 1 or self.beta < 0 or self.num_classes < 0:
            raise ConfigError("latent_dim, hidden >= 1; beta, num_classes >= 0")


@dataclass
class VAEOutput:
    loss: torch.Tensor  # recon + beta * kl, per image
    recon: torch.Tensor
    kl: torch.Tensor
    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor


class ConvVAE(nn.Module):
    """Gaussian encoder q(z|x[,y]), pixel decoder p(x|z[,y]), standard normal prior."""

    kind = "image_vae"

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = config
        k = config.num_classes
        c, h, w = config.image_shape
        # A conditional encoder sees the label as K constant input planes, so its convolutions can
        # describe the image *given* the class; with the label only at the last layer the latent
        # code keeps the class and the decoder learns to ignore its label input.
        self.encoder = ConvEncoder((c + k, h, w), config.hidden, 8 * config.hidden)
        self.head = nn.Linear(8 * config.hidden, 2 * config.latent_dim)
        self.decoder = ConvDecoder(config.latent_dim + k, config.image_shape, config.hidden)

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def _cond(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return h
        if y is None:
            raise ConfigError("this is a conditional VAE: pass labels")
        return torch.cat([h, one_hot(y, self.config.num_classes)], dim=1)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conditional:
            if y is None:
                raise ConfigError("this is a conditional VAE: pass labels")
            x = label_planes(x, y, self.config.num_classes)
        mu, logvar = self.head(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def decode_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._cond(z, y))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Mean image in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, y))

    def recon_nll(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Per-image reconstruction term in nats, shape ``[B]``."""
        if self.config.recon == "bce":
            return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        return (torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> VAEOutput:
        mu, logvar = self.encode(x, y)
        eps = torch.randn(mu.shape, generator=generator, device="cpu").to(mu.device)
        z = mu + eps * (0.5 * logvar).exp()
        logits = self.decode_logits(z, y)
        recon = self.recon_nll(logits, x).mean()
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        return VAEOutput(recon + self.config.beta * kl, recon, kl, logits, mu, logvar)

    @torch.no_grad()
    def iw_nll(
        self, x: torch.Tensor, y: torch.Tensor | None = None, samples: int = 50, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Importance-weighted upper bound on -log p(x) per image (nats; tighter as ``samples`` grows)."""
        mu, logvar = self.encode(x, y)
        std = (0.5 * logvar).exp()
        terms = []
        for _ in range(samples):
            eps = torch.randn(mu.shape, generator=generator, device="cpu").to(mu.device)
            z = mu + eps * std
            log_q = (-0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi))).sum(1)
            log_p = (-0.5 * (z.pow(2) + math.log(2 * math.pi))).sum(1)
            terms.append(log_p - self.recon_nll(self.decode_logits(z, y), x) - log_q)
        stacked = torch.stack(terms)
        return -(torch.logsumexp(stacked, 0) - math.log(samples))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(next(self.parameters()).device)
        return self.decode(z, y)
