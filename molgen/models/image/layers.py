"""Building blocks shared by the image models: conv encoders/decoders sized from the data.

Two stride-2 convolutions halve the image twice (DCGAN-style, Radford et al.
2016, "Unsupervised Representation Learning with Deep Convolutional
Generative Adversarial Networks"); the decoder mirrors them with transposed
convolutions from ``ceil(H/4) x ceil(W/4)`` and crops to the exact size, so
any image size and channel count works (28x28x1 digits, 32x32x3 photos, ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from molgen.errors import ConfigError

__all__ = [
    "ConvEncoder", "ConvDecoder", "one_hot", "check_shape", "dcgan_init", "label_planes", "random_shift",
]



def check_shape(shape: tuple[int, ...], name: str) -> None:
    if len(shape) != 3 or min(shape) < 1 or min(shape[1:]) < 4:
        raise ConfigError(f"{name}: image_shape must be (channels, height, width) with height, width >= 4, got {shape}")


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return F.one_hot(labels.long(), num_classes).float()


def label_planes(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` with the one-hot labels appended as ``num_classes`` constant planes."""
    planes = one_hot(labels, num_classes).to(x.dtype)[:, :, None, None]
    return torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of ``x`` ``[B, C, H, W]`` translated by its own random (dy, dx) in ``[-max_shift, max_shift]``, zero-filled."""
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)
    dy, dx = torch.randint(2 * max_shift + 1, (2, n, 1), generator=generator).to(x.device)
    rows = (dy + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    return padded[batch, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]


class ConvEncoder(nn.Module):
    """Image ``[B, C, H, W]`` -> flat features ``[B, out_dim]`` (two stride-2 convs and a linear layer)."""

    def __init__(
        self, image_shape: tuple[int, int, int], hidden: int, out_dim: int, batch_norm: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        layers: list[nn.Module] = [nn.Conv2d(c, hidden, 4, 2, 1), nn.LeakyReLU(0.2)]
        layers += [nn.Dropout(dropout)] if dropout else []
        layers += [nn.Conv2d(hidden, 2 * hidden, 4, 2, 1)]
        layers += [nn.BatchNorm2d(2 * hidden)] if batch_norm else []
        layers += [nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout else [])
        self.conv = nn.Sequential(*layers, nn.Flatten())
        flat = 2 * hidden * (h // 4) * (w // 4)
        self.fc = nn.Sequential(nn.Linear(flat, out_dim), nn.LeakyReLU(0.2))
        self.out_dim = out_dim

    def conv_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolution's activations, flattened ``[B, 2 * hidden * (H // 4) * (W // 4)]``."""
        # Pixels arrive in [0, 1]; centring them helps every discriminator and encoder alike.
        return self.conv(x * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv_features(x))


class ConvDecoder(nn.Module):
    """Vector ``[B, in_dim]`` -> pixel logits ``[B, C, H, W]`` (mirror of :class:`ConvEncoder`)."""

    def __init__(self, in_dim: int, image_shape: tuple[int, int, int], hidden: int, batch_norm: bool = False) -> None:
        super().__init__()
        c, h, w = image_shape
        self.image_shape = image_shape
        self.start = (2 * hidden, math.ceil(h / 4), math.ceil(w / 4))
        flat = int(torch.tensor(self.start).prod())
        norm: list[nn.Module] = [nn.BatchNorm1d(flat)] if batch_norm else []
        self.fc = nn.Sequential(nn.Linear(in_dim, flat), *norm, nn.ReLU())
        layers: list[nn.Module] = [nn.ConvTranspose2d(2 * hidden, hidden, 4, 2, 1)]
        layers += [nn.BatchNorm2d(hidden)] if batch_norm else []
        layers += [nn.ReLU(), nn.ConvTranspose2d(hidden, c, 4, 2, 1)]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.deconv(self.fc(z).view(-1, *self.start))
        _, h, w = self.image_shape
        return out[:, :, :h, :w]


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.'s initialisation: weights N(0, 0.02), batch-norm scales N(1, 0.02), biases 0.

    PyTorch's defaults scale with fan-in; the GANs here are tuned for these smaller, uniform weights.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
