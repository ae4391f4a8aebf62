"""Semi-supervised GAN with feature matching.

Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016
(section 5): the discriminator is a K-class classifier whose (K+1)-th "fake"
logit is fixed at zero, so ``D(x) = Z(x) / (Z(x) + 1)`` with
``Z(x) = sum_k exp(l_k(x))``. Its loss is cross-entropy on the few labelled
images plus the real/fake GAN loss on unlabelled and generated ones; the
generator matches the mean of the discriminator's intermediate features on
real and generated batches (feature matching), which is what makes the
classifier good rather than the samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from molgen.errors import ConfigError
from molgen.models.image.gan import AdversarialLosses
from molgen.models.image.layers import ConfigMixin, ConvDecoder, ConvEncoder, check_shape

__all__ = ["SGANConfig", "SemiSupervisedGAN"]


@dataclass
class SGANConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 10
    latent_dim: int = 64
    hidden: int = 32
    dropout: float = 0.3
    unsupervised_weight: float = 1.0

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "SGANConfig")
        if self.num_classes < 2:
            raise ConfigError("a semi-supervised GAN needs labelled data with at least 2 classes")
        if not 0 <= self.dropout < 1:
            raise ConfigError("dropout must be in [0, 1)")


class SemiSupervisedGAN(nn.Module):
    kind = "image_sgan"

    def __init__(self, config: SGANConfig) -> None:
        super().__init__()
        self.config = config
        width = 8 * config.hidden
        self.generator = ConvDecoder(config.latent_dim, config.image_shape, config.hidden, batch_norm=True)
        # Dropout in the classifier matters with 100 labels (Salimans et al. regularise D heavily).
        self.features = ConvEncoder(config.image_shape, config.hidden, width, dropout=config.dropout)
        self.classifier = nn.Linear(width, config.num_classes)

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
        return self.classifier(self.features(x))

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(1)

    def discriminator_loss(
        self, x: torch.Tensor, x_lab: torch.Tensor, y_lab: torch.Tensor, generator: torch.Generator | None = None
    ) -> AdversarialLosses:
        with torch.no_grad():
            fake = self.generate(self.noise(len(x), generator))
        logits_lab = self.logits(x_lab)
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
