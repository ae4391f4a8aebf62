"""Pictures for image models: grids, comparison rows, loss curves, ROC curves, latent maps, GIFs.

Grids are assembled in NumPy and written as PNG with Pillow (pixel-exact, no
axes); charts use matplotlib off-screen via :func:`molgen.viz.save_figure`.
Every file is written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from molgen.utils.io import atomic_output
from molgen.viz import save_figure

__all__ = ["image_grid", "image_rows", "plot_losses", "plot_roc", "plot_latent_pca", "frames_to_gif", "grid_array"]


def grid_array(images: torch.Tensor | np.ndarray, per_row: int = 8, pad: int = 2) -> np.ndarray:
    """``[N, C, H, W]`` in [0, 1] -> one uint8 ``[H', W', C]`` mosaic with light separators."""
    arr = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255
    n, c, h, w = arr.shape
    per_row = max(1, min(per_row, n))
    rows = -(-n // per_row)
    canvas = np.full((c, rows * (h + pad) + pad, per_row * (w + pad) + pad), 0.5, dtype=np.float32)
    for i in range(n):
        r, k = divmod(i, per_row)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        canvas[:, top : top + h, left : left + w] = arr[i]
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8).transpose(1, 2, 0)


def _write_png(mosaic: np.ndarray, path: str | Path, scale: int) -> Path:
    from PIL import Image

    img = Image.fromarray(mosaic[:, :, 0] if mosaic.shape[2] == 1 else mosaic)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    with atomic_output(path, "wb") as fh:
        fh.write(buf.getvalue())
    return Path(path)


def image_grid(images: torch.Tensor | np.ndarray, path: str | Path, per_row: int = 8, scale: int = 2) -> Path:
    """Save images ``[N, C, H, W]`` (floats in [0, 1] or uint8) as a PNG grid."""
    return _write_png(grid_array(images, per_row), path, scale)


def image_rows(rows: Sequence[torch.Tensor], path: str | Path, scale: int = 2) -> Path:
    """Save equally long batches as the rows of one grid (original / noisy / denoised, interpolation paths)."""
    width = len(rows[0])
    return image_grid(torch.cat([torch.as_tensor(r) for r in rows]), path, per_row=width, scale=scale)


def plot_losses(history: Sequence[dict[str, float]], path: str | Path) -> Path | None:
    """Per-epoch curves of every logged training quantity (generator and discriminator losses for GANs)."""
    import matplotlib.pyplot as plt

    if not history:
        return None
    preferred = ("loss", "recon", "kl", "accuracy", "d_loss", "g_loss", "wasserstein", "feature_recon", "supervised", "unsupervised")
    keys = [k for k in preferred if f"train_{k}" in history[0]][:6]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    epochs = [r["epoch"] for r in history]
    for ax, key in zip(axes[0], keys):
        for split, style in (("train", "-o"), ("val", "--s")):
            values = [r.get(f"{split}_{key}", np.nan) for r in history]
            if not all(np.isnan(values)):
                ax.plot(epochs, values, style, ms=3, label=split)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_roc(fpr: np.ndarray, tpr: np.ndarray, auroc: float, path: str | Path, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f"AUROC {auroc:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_latent_pca(codes: np.ndarray, labels: np.ndarray, path: str | Path, class_names: Sequence[str] = ()) -> Path:
    """Scatter of the first two principal components of latent codes, coloured by class."""
    import matplotlib.pyplot as plt

    centred = codes - codes.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T if codes.shape[1] > 1 else np.c_[centred[:, 0], np.zeros(len(codes))]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        ax.scatter(xy[sel, 0], xy[sel, 1], s=5, alpha=0.7, label=name)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save_figure(fig, path)


def frames_to_gif(frames: Sequence[Path], path: str | Path, ms_per_frame: int = 400) -> Path | None:
    """Animate PNG frames (e.g. the fixed-noise samples after each epoch) into a looping GIF."""
    from PIL import Image

    if not frames:
        return None
    images = [Image.open(f).copy() for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
    with atomic_output(path, "wb") as fh:
        fh.write(buf.getvalue())
    return Path(path)
