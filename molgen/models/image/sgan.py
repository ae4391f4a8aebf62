"""Semi-supervised GAN with feature matching.

Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016
(section 5): the discriminator is a K-class classifier whose (K+1)-th "fake"
logit is fixed at zero, so ``D(x) = Z(x) / (Z(x) + 1)`` with
``Z(x) = sum_k exp(l_k(x))``. Its loss is cross-entropy on the few labelled
images plus the real/fake GAN loss on unlabelled and generated ones; the
generator matches the mean of the discriminator's last hidden features on
real and generated batches (feature matching), which is what makes the
classifier good rather than the samples.

Two discriminators: ``"mlp"`` is Salimans et al.'s MNIST network (five
weight-normalised ReLU layers of 1000-500-250-250-250 units, Gaussian noise
of std 0.3 on the input pixels and 0.5 after every hidden layer; Salimans &
Kingma 2016 for weight normalisation); ``"conv"`` is the shared conv encoder
with dropout. The generator is the shared conv decoder (batch norm, sigmoid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.models.image.gan import AdversarialLosses
from molgen.models.image.layers import (
    ConvDecoder,
    ConvEncoder,
    check_shape,
    random_shift,
)

__all__ = ["SGANConfig", "SemiSupervisedGAN", "NoisyMLP"]


@dataclass
class SGANConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    latent_dim: int = 64
    hidden: int = 32  # generator width; also the conv discriminator's
    discriminator: Literal["conv", "mlp"] = "conv"
    widths: tuple[int, ...] = (1000, 500, 250, 250, 250)  # mlp discriminator
    input_noise: float = 0.3  # mlp: std of the Gaussian noise on the pixels (training only)
    hidden_noise: float = 0.5  # mlp: std of the noise after every hidden layer
    dropout: float = 0.3  # conv discriminator
    unsupervised_weight: float = 1.0
    label_shift: int = 0  # labelled images are translated by up to this many pixels each time they are used

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "SGANConfig")
        self.widths = tuple(int(w) for w in self.widths)
        if self.num_classes < 2:
            raise ConfigError("a semi-supervised GAN needs labelled data with at least 2 classes")
        if self.discriminator not in ("conv", "mlp"):
            raise ConfigError(f"discriminator must be conv or mlp, not {self.discriminator!r}")
        if not self.widths or min(self.widths) < 1:
            raise ConfigError("widths must be one or more positive layer sizes")
        if not 0 <= self.dropout < 1 or self.input_noise < 0 or self.hidden_noise < 0 or self.unsupervised_weight < 0:
            raise ConfigError("dropout must be in [0, 1); noise levels and unsupervised_weight >= 0")
        if not 0 <= self.label_shift < min(self.image_shape[1:]):
            raise ConfigError("label_shift must be >= 0 and smaller than the image")


def _noisy(x: torch.Tensor, std: float, training: bool) -> torch.Tensor:
    return x + std * torch.randn_like(x) if training and std > 0 else x


class NoisyMLP(nn.Module):
    """Flattened image -> last hidden layer, with Gaussian noise on the input and between layers while training."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], input_noise: float, hidden_noise: float) -> None:
        super().__init__()
        sizes = (in_dim, *widths)
        self.layers = nn.ModuleList(weight_norm(nn.Linear(a, b)) for a, b in zip(sizes, sizes[1:]))
        self.input_noise, self.hidden_noise = input_noise, hidden_noise
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _noisy(x.flatten(1), self.input_noise, self.training)
        for i, layer in enumerate(self.layers):
            h = F.relu(layer(h if i == 0 else _noisy(h, self.hidden_noise, self.training)))
        return h


class SemiSupervisedGAN(nn.Module):
    kind = "image_sgan"

    def __init__(self, config: SGANConfig) -> None:
        super().__init__()
        self.config = config
        self.generator = ConvDecoder(config.latent_dim, config.image_shape, config.hidden, batch_norm=True)
        if config.discriminator == "mlp":
            c, h, w = config.image_shape
            self.features: nn.Module = NoisyMLP(c * h * w, config.widths, config.input_noise, config.hidden_noise)
            self.classifier = weight_norm(nn.Linear(config.widths[-1], config.num_classes))
            self.head_noise = config.hidden_noise
        else:
            # Dropout in the classifier matters with 100 labels (Salimans et al. regularise D heavily).
            self.features = ConvEncoder(config.image_shape, config.hidden, 8 * config.hidden, dropout=config.dropout)
            self.classifier = nn.Linear(8 * config.hidden, config.num_classes)
            self.head_noise = 0.0

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        disc = list(self.features.parameters()) + list(self.classifier.parameters())
        return {"discriminator": disc, "generator": list(self.generator.parameters())}

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.config.latent_dim, generator=generator).to(next(self.parameters()).device)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.generator(z))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.generate(self.noise(n, generator))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(_noisy(self.features(x), self.head_noise, self.training))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(1)

    def discriminator_loss(
        self, x: torch.Tensor, x_lab: torch.Tensor, y_lab: torch.Tensor, generator: torch.Generator | None = None
    ) -> AdversarialLosses:
        with torch.no_grad():
            fake = self.generate(self.noise(len(x), generator))
        logits_lab = self.logits(random_shift(x_lab, self.config.label_shift, generator))
        supervised = F.cross_entropy(logits_lab, y_lab)
        lse_real = torch.logsumexp(self.logits(x), 1)
        lse_fake = torch.logsumexp(self.logits(fake), 1)
        # -log D(x) = softplus(lse) - lse ; -log(1 - D(G(z))) = softplus(lse_fake)
        unsupervised = (F.softplus(lse_real) - lse_real).mean() + F.softplus(lse_fake).mean()
        loss = supervised + self.config.unsupervised_weight * unsupervised
        logs = {
            "supervised": supervised.item(),
            "unsupervised": unsupervised.item(),
            "train_accuracy": (logits_lab.argmax(1) == y_lab).float().mean().item(),
            "d_loss": loss.item(),
        }
        return AdversarialLosses({"discriminator": loss}, logs)

    def generator_loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> AdversarialLosses:
        with torch.no_grad():
            real_features = self.features(x).mean(0)
        fake_features = self.features(self.generate(self.noise(len(x), generator))).mean(0)
        loss = (real_features - fake_features).pow(2).mean()
        return AdversarialLosses({"generator": loss}, {"g_loss": loss.item()})
