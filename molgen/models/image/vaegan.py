"""VAE-GAN: a VAE whose reconstruction error is measured in discriminator feature space.

Larsen et al., "Autoencoding beyond pixels using a learned similarity
metric", ICML 2016. One forward pass yields three losses for three parameter
groups (their Algorithm 1):

- encoder: ``KL + L_feat``;
- decoder: ``gamma * L_feat + L_gan_g`` (non-saturating form of ``-L_GAN``);
- discriminator: ``L_GAN`` on real images, reconstructions and prior samples.

``L_feat`` is the squared distance between the discriminator's last
convolutional feature maps of an image and of its reconstruction (a Gaussian
likelihood in feature space). ``pixel_weight`` optionally adds the pixel BCE, which
stabilises very short training runs; 0 gives the paper's model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.models.image.gan import AdversarialLosses
from molgen.models.image.layers import (
    ConvDecoder,
    ConvEncoder,
    check_shape,
)

__all__ = ["VAEGANConfig", "VAEGAN"]


@dataclass
class VAEGANConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 16
    hidden: int = 32
    gamma: float = 1.0  # weight of the feature reconstruction in the decoder's loss (the paper's gamma)
    pixel_weight: float = 0.0

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "VAEGANConfig")
        if self.latent_dim < 1 or self.hidden < 1 or self.gamma < 0 or self.pixel_weight < 0:
            raise ConfigError("latent_dim, hidden >= 1; gamma, pixel_weight >= 0")


class VAEGAN(nn.Module):
    kind = "image_vaegan"

    def __init__(self, config: VAEGANConfig) -> None:
        super().__init__()
        self.config = config
        width = 8 * config.hidden
        self.encoder = nn.Sequential(
            ConvEncoder(config.image_shape, config.hidden, width), nn.Linear(width, 2 * config.latent_dim)
        )
        self.decoder = ConvDecoder(config.latent_dim, config.image_shape, config.hidden, batch_norm=True)
        self.disc_features = ConvEncoder(config.image_shape, config.hidden, width)
        self.disc_out = nn.Linear(width, 1)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "encoder": list(self.encoder.parameters()),
            "decoder": list(self.decoder.parameters()),
            "discriminator": list(self.disc_features.parameters()) + list(self.disc_out.parameters()),
        }

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(next(self.parameters()).device)
        return self.decode(z)

    def _discriminate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The similarity is measured on the last convolution's maps, as the paper does (its third
        # conv layer): they keep where strokes are. With the 256-unit layer after them, the feature
        # error was easy to satisfy without a code, the KL fell to 0.2 nats and reconstructions failed.
        maps = self.disc_features.conv_features(x)
        return maps, self.disc_out(self.disc_features.fc(maps)).squeeze(1)

    def losses(self, x: torch.Tensor, generator: torch.Generator | None = None) -> AdversarialLosses:
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator).to(x.device)
        z = mu + eps * (0.5 * logvar).exp()
        recon_logits = self.decoder(z)
        recon = torch.sigmoid(recon_logits)
        prior = torch.sigmoid(self.decoder(torch.randn(mu.shape, generator=generator).to(x.device)))
        kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
        h_real, s_real = self._discriminate(x)
        h_recon, s_recon = self._discriminate(recon)
        _, s_prior = self._discriminate(prior)
        # Summed over features like a pixel likelihood, so it is on the KL's scale.
        feat = 0.5 * (h_real.detach() - h_recon).pow(2).sum(1).mean()
        pixel = F.binary_cross_entropy_with_logits(recon_logits, x, reduction="none").flatten(1).sum(1).mean()
        d_loss = F.softplus(-s_real).mean() + 0.5 * (F.softplus(s_recon).mean() + F.softplus(s_prior).mean())
        g_gan = 0.5 * (F.softplus(-s_recon).mean() + F.softplus(-s_prior).mean())
        w = self.config.pixel_weight
        losses = {
            "encoder": kl + feat + w * pixel,
            "decoder": self.config.gamma * feat + g_gan + w * pixel,
            "discriminator": d_loss,
        }
        logs = {"kl": kl.item(), "feature_recon": feat.item(), "recon": pixel.item(), "d_loss": d_loss.item(), "g_loss": g_gan.item()}
        return AdversarialLosses(losses, logs)
