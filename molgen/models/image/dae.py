"""Denoising autoencoder.

Vincent et al., "Extracting and Composing Robust Features with Denoising
Autoencoders", ICML 2008: corrupt the input, reconstruct the clean image.
Corruption is additive Gaussian noise of standard deviation ``noise`` clipped
to [0, 1] (``gaussian``) or zeroing a fraction ``noise`` of the pixels
(``mask``, the paper's masking noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.models.image.layers import ConvDecoder, ConvEncoder, check_shape

__all__ = ["DAEConfig", "DenoisingAE", "DAEOutput", "corrupt"]


@dataclass
class DAEConfig(ConfigMixin):
    image_shape: tuple[int, int, int] = (1, 28, 28)
    code_dim: int = 32
    hidden: int = 32
    noise: float = 0.5
    noise_kind: Literal["gaussian", "mask"] = "gaussian"

    def __post_init__(self) -> None:
        check_shape(tuple(self.image_shape), "DAEConfig")
        if self.noise_kind not in ("gaussian", "mask"):
            raise ConfigError(f"noise_kind must be gaussian or mask, not {self.noise_kind!r}")
        if self.noise < 0 or (self.noise_kind == "mask" and self.noise > 1):
            raise ConfigError("noise must be >= 0 (and <= 1 for mask noise)")


@dataclass
class DAEOutput:
    loss: torch.Tensor  # BCE of the clean image, nats per image
    logits: torch.Tensor
    noisy: torch.Tensor


def corrupt(x: torch.Tensor, level: float, kind: str = "gaussian", generator: torch.Generator | None = None) -> torch.Tensor:
    """Noisy copy of images in [0, 1] (Gaussian std ``level`` clipped, or a fraction ``level`` of pixels zeroed)."""
    if kind == "gaussian":
        return (x + level * torch.randn(x.shape, generator=generator).to(x.device)).clamp(0, 1)
    if kind == "mask":
        keep = torch.rand(x.shape, generator=generator).to(x.device) >= level
        return x * keep
    raise ConfigError(f"unknown noise kind {kind!r}; use gaussian or mask")


class DenoisingAE(nn.Module):
    kind = "image_dae"

    def __init__(self, config: DAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = nn.Sequential(
            ConvEncoder(config.image_shape, config.hidden, 8 * config.hidden), nn.Linear(8 * config.hidden, config.code_dim)
        )
        self.decoder = ConvDecoder(config.code_dim, config.image_shape, config.hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(code))

    def denoise(self, noisy: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(noisy))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> DAEOutput:
        noisy = corrupt(x, self.config.noise, self.config.noise_kind, generator)
        logits = self.decoder(self.encoder(noisy))
        loss = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1).mean()
        return DAEOutput(loss, logits, noisy)
