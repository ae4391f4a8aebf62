"""DCGAN, WGAN-GP and conditional GAN.

- GAN with the non-saturating generator loss: Goodfellow et al., "Generative
  Adversarial Nets", NeurIPS 2014; convolutional architecture after Radford
  et al., "Unsupervised Representation Learning with Deep Convolutional GANs"
  (DCGAN), ICLR 2016.
- WGAN-GP: Gulrajani et al., "Improved Training of Wasserstein GANs",
  NeurIPS 2017 (critic without batch norm, gradient penalty weight 10, several
  critic steps per generator step, Adam(0, 0.9)).
- Conditional GAN: Mirza & Osindero, "Conditional Generative Adversarial
  Nets", 2014. The generator gets the one-hot label beside the noise; the
  discriminator gets it twice: as constant input planes (Mirza & Osindero's
  concatenation, so the first convolutions can check the digit against its
  label) and as the projection term of Miyato & Koyama, "cGANs with
  Projection Discriminator", ICLR 2018. With the projection alone, only 31%
  of the samples showed the requested digit after 10 epochs on the embedded
  digits; with both, 81% (and rising).

Weights start at Radford et al.'s N(0, 0.02). Images are in [0, 1]; the
generator ends in a sigmoid.
"""

from __future__ import annotations

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
    dcgan_init,
    label_planes,
    one_hot,
)

__all__ = ["GANConfig", "GAN", "AdversarialLosses"]


@dataclass
class GANConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 64
    hidden: int = 32
    loss: Literal["ns", "wgan-gp"] = "ns"
    num_classes: int = 0  # > 0: conditional GAN
    gp_weight: float = 10.0
    critic_steps: int = 1  # discriminator updates per generator update
    minibatch_std: bool = False  # ns loss only; see Discriminator
    pack: int = 1  # > 1: the discriminator judges packs of this many images (unconditional ns loss only)

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "GANConfig")
        if self.loss not in ("ns", "wgan-gp"):
            raise ConfigError(f"loss must be ns or wgan-gp, not {self.loss!r}")
        if self.latent_dim < 1 or self.hidden < 1 or self.num_classes < 0 or self.critic_steps < 1:
            raise ConfigError("latent_dim, hidden, critic_steps >= 1 and num_classes >= 0")
        if self.pack < 1 or (self.pack > 1 and (self.loss != "ns" or self.num_classes)):
            raise ConfigError("pack must be >= 1, and > 1 only for the unconditional GAN with the ns loss")


@dataclass
class AdversarialLosses:
    """Losses of one adversarial phase, keyed by the parameter group each one trains."""

    losses: dict[str, torch.Tensor]
    logs: dict[str, float]


class Discriminator(nn.Module):
    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        width = 8 * config.hidden
        c, h, w = config.image_shape
        self.num_classes = config.num_classes
        # No batch norm for WGAN-GP: it couples the samples of a batch, which the gradient penalty must not see.
        # PacGAN (Lin et al., "PacGAN: The Power of Two Samples in Generative Adversarial Networks",
        # NeurIPS 2018): judging m samples at once, stacked as channels, a discriminator sees how varied
        # they are, so a generator that drops modes is penalised.
        self.pack = config.pack
        in_channels = (c + config.num_classes) * config.pack
        self.features = ConvEncoder((in_channels, h, w), config.hidden, width, batch_norm=config.loss == "ns")
        # Minibatch standard deviation (Karras et al., "Progressive Growing of GANs", ICLR 2018): the
        # spread of the batch's features is one more input of the last layer, so a generator that puts
        # every sample on the same few digits is told so. Batch-coupled, hence not for WGAN-GP.
        self.batch_std = config.minibatch_std and config.loss == "ns"
        self.out = nn.Linear(width + int(self.batch_std), 1)
        self.embed = nn.Embedding(config.num_classes, width) if config.num_classes else None
        dcgan_init(self)  # includes the projection embedding: at PyTorch's N(0, 1) it swamps the other scores

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if y is not None:
            x = label_planes(x, y, self.num_classes)
        if self.pack > 1:
            n = len(x) - len(x) % self.pack  # a ragged tail of the batch is left out
            if n == 0:
                raise ConfigError(f"a batch of {len(x)} images is smaller than the pack size {self.pack}")
            x = x[:n].reshape(n // self.pack, self.pack * x.shape[1], *x.shape[2:])
        h = self.features(x)
        if self.batch_std:
            spread = h.std(0, unbiased=False).mean()
            score = self.out(torch.cat([h, spread.expand(len(h), 1)], 1)).squeeze(1)
        else:
            score = self.out(h).squeeze(1)
        if self.embed is not None:
            score = score + (self.embed(y) * h).sum(1)
        return score


class GAN(nn.Module):
    """Generator and discriminator with the losses of each side."""

    kind = "image_gan"

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = ConvDecoder(config.latent_dim + config.num_classes, config.image_shape, config.hidden, batch_norm=True)
        self.discriminator = Discriminator(config)
        dcgan_init(self.generator)

    @property
    def conditional(self) -> bool:
        return self.config.num_classes > 0

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"discriminator": list(self.discriminator.parameters()), "generator": list(self.generator.parameters())}

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, generator=generator).to(next(self.parameters()).device)

    def generate(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if y is None:
                raise ConfigError("this is a conditional GAN: pass labels")
            z = torch.cat([z, one_hot(y, self.config.num_classes)], 1)
        return torch.sigmoid(self.generator(z))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.generate(self.noise(n, generator), y)

    def _fake_labels(self, y: torch.Tensor | None, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
        if not self.conditional:
            return None
        return torch.randint(self.config.num_classes, (n,), generator=generator).to(next(self.parameters()).device)

    def discriminator_loss(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None = None) -> AdversarialLosses:
        y_fake = self._fake_labels(y, len(x), generator)
        with torch.no_grad():
            fake = self.generate(self.noise(len(x), generator), y_fake)
        real_score = self.discriminator(x, y)
        fake_score = self.discriminator(fake, y_fake)
        logs = {"d_real": real_score.mean().item(), "d_fake": fake_score.mean().item()}
        if self.config.loss == "ns":
            loss = F.softplus(-real_score).mean() + F.softplus(fake_score).mean()
        else:
            gp = self._gradient_penalty(x, fake, y, generator)
            loss = fake_score.mean() - real_score.mean() + self.config.gp_weight * gp
            logs["gp"] = gp.item()
            logs["wasserstein"] = (real_score.mean() - fake_score.mean()).item()
        logs["d_loss"] = loss.item()
        return AdversarialLosses({"discriminator": loss}, logs)

    def _gradient_penalty(
        self, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor:
        alpha = torch.rand(len(real), 1, 1, 1, generator=generator).to(real.device)
        mix = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        score = self.discriminator(mix, y)
        (grad,) = torch.autograd.grad(score.sum(), mix, create_graph=True)
        return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()

    def generator_loss(self, n: int, generator: torch.Generator | None = None) -> AdversarialLosses:
        y_fake = self._fake_labels(None, n, generator)
        score = self.discriminator(self.generate(self.noise(n, generator), y_fake), y_fake)
        loss = F.softplus(-score).mean() if self.config.loss == "ns" else -score.mean()
        return AdversarialLosses({"generator": loss}, {"g_loss": loss.item()})
