"""What users do with a trained image model, for any model that supports it.

Sampling, reconstruction, interpolation, denoising, inpainting and anomaly
scores live here rather than in the model classes: they work for every model
that offers ``sample``, ``encode``/``decode`` or ``denoise``, and say so in a
one-line :class:`~molgen.errors.ConfigError` when a model cannot.

>>> from molgen.models.image import load_image_model
>>> model, meta = load_image_model("runs/cgan")                  # doctest: +SKIP
>>> sevens = sample_images(model, 64, label=7, seed=0)           # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molgen.errors import ConfigError
from molgen.generate.decoding import lerp, slerp
from molgen.models.image.dae import DenoisingAE, corrupt

__all__ = [
    "sample_images",
    "encode_images",
    "reconstruct",
    "interpolate",
    "denoise",
    "inpaint",
    "anomaly_scores",
    "batched",
]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _is_conditional(model: nn.Module) -> bool:
    return bool(getattr(model, "conditional", False))


def _labels_for(model: nn.Module, n: int, label: int | None) -> torch.Tensor | None:
    if not _is_conditional(model):
        if label is not None:
            raise ConfigError(f"{model.kind} is unconditional; --label needs a conditional model (cvae or cgan)")
        return None
    k = model.config.num_classes
    if label is None:
        return torch.arange(n) % k
    if not 0 <= label < k:
        raise ConfigError(f"--label {label} is out of range; this model knows classes 0..{k - 1}")
    return torch.full((n,), label, dtype=torch.long)


def batched(fn, x: torch.Tensor, *rest: torch.Tensor | None, batch_size: int = 500) -> torch.Tensor:
    """Apply ``fn`` to slices of ``x`` (and matching slices of ``rest``) and concatenate."""
    parts = []
    for i in range(0, len(x), batch_size):
        parts.append(fn(x[i : i + batch_size], *[r if r is None else r[i : i + batch_size] for r in rest]))
    return torch.cat(parts)


@torch.no_grad()
def sample_images(model: nn.Module, n: int, label: int | None = None, seed: int = 0, labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` generated images ``[n, C, H, W]`` in [0, 1]; conditional models cycle through classes unless ``label`` is given."""
    if not hasattr(model, "sample"):
        raise ConfigError(f"{model.kind} models cannot generate new images; use a vae, cvae, gan or vaegan")
    if n < 1:
        raise ConfigError("-n must be >= 1")
    model.eval()
    y = labels if labels is not None else _labels_for(model, n, label)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, 500):
        part = None if y is None else y[i : i + 500].to(_device(model))
        out.append(model.sample(min(500, n - i), part, generator=g).cpu())
    return torch.cat(out)


def _require_encoder(model: nn.Module) -> None:
    if not hasattr(model, "encode"):
        raise ConfigError(f"{model.kind} models have no encoder; use a vae, cvae, dae or vaegan")


@torch.no_grad()
def encode_images(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Latent codes (posterior means for VAEs) ``[N, latent]``."""
    _require_encoder(model)
    model.eval()
    dev = _device(model)
    if isinstance(model, DenoisingAE):
        return batched(lambda a: model.encode(a.to(dev)).cpu(), x)
    cond = y if _is_conditional(model) else None
    return batched(lambda a, b: model.encode(a.to(dev), None if b is None else b.to(dev))[0].cpu(), x, cond)


@torch.no_grad()
def reconstruct(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Decode the codes of ``x`` (posterior means): deterministic reconstructions in [0, 1]."""
    _require_encoder(model)
    dev = _device(model)
    z = encode_images(model, x, y)
    cond = y if _is_conditional(model) else None
    return batched(lambda a, b: model.decode(a.to(dev), *([] if isinstance(model, DenoisingAE) else [None if b is None else b.to(dev)])).cpu(), z, cond)


@torch.no_grad()
def interpolate(
    model: nn.Module, x_from: torch.Tensor, x_to: torch.Tensor, steps: int = 10, spherical: bool = False,
    y_from: torch.Tensor | None = None, y_to: torch.Tensor | None = None, seed: int = 0,
) -> torch.Tensor:
    """Images along the latent path between two images (encoder models) or two noise draws (GANs).

    ``x_from``/``x_to`` are single images ``[C, H, W]``; a conditional model
    keeps the first image's label along the path.
    """
    if steps < 2:
        raise ConfigError("--steps must be >= 2")
    model.eval()
    dev = _device(model)
    path = slerp if spherical else lerp
    if hasattr(model, "encode"):
        y = None if y_from is None else y_from.view(1)
        a, b = encode_images(model, x_from[None], y), encode_images(model, x_to[None], y)
        codes = path(a[0], b[0], steps)
        if isinstance(model, DenoisingAE):
            return model.decode(codes.to(dev)).cpu()
        return model.decode(codes.to(dev), None if y is None else y.expand(steps).to(dev)).cpu()
    if hasattr(model, "generate"):
        g = torch.Generator().manual_seed(seed)
        a, b = model.noise(2, g).cpu()
        codes = path(a, b, steps)
        y = _labels_for(model, steps, None if y_from is None else int(y_from))
        return model.generate(codes.to(dev), None if y is None else y.to(dev)).cpu()
    raise ConfigError(f"{model.kind} models cannot interpolate")


@torch.no_grad()
def denoise(model: nn.Module, x: torch.Tensor, noise: float, kind: str = "gaussian", seed: int = 0, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``x`` and reconstruct it -> ``(noisy, denoised)``; any autoencoder works, a DAE works best."""
    noisy = corrupt(x, noise, kind, torch.Generator().manual_seed(seed))
    if isinstance(model, DenoisingAE):
        model.eval()
        dev = _device(model)
        return noisy, batched(lambda a: model.denoise(a.to(dev)).cpu(), noisy)
    return noisy, reconstruct(model, noisy, y)


@torch.no_grad()
def inpaint(model: nn.Module, x: torch.Tensor, mask: torch.Tensor, iterations: int = 5, y: torch.Tensor | None = None) -> torch.Tensor:
    """Fill the pixels where ``mask`` is True by repeated reconstruction, keeping the known pixels.

    A simple imputation scheme for autoencoders (Rezende et al. 2014, section
    5.2): start the unknown pixels at zero and alternate reconstruct / reset.
    """
    filled = x.masked_fill(mask, 0.0)
    for _ in range(iterations):
        filled = torch.where(mask, reconstruct(model, filled, y), x)
    return filled


@torch.no_grad()
def anomaly_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image reconstruction error (summed BCE, nats): higher means less like the training data."""
    recon = reconstruct(model, x, y).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(recon, x, reduction="none").flatten(1).sum(1)
