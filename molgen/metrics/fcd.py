"""Frechet ChemNet Distance (Preuer et al. 2018, *J. Chem. Inf. Model.* 58:1736).

The ChemNet weights come from the ``fcd`` package (1.2.x), which ships them, so
nothing is downloaded. The input encoding is the one of ``fcd_torch``, which the
MOSES reference code uses, and differs from ``fcd``'s own in two ways that
change the numbers:

* a SMILES is read up to its first ``.`` (``fcd_torch`` uses ``.`` as the end
  token), so only the first component of a multi-component molecule counts;
* a SMILES longer than 349 symbols is cut, where ``fcd`` pads further.

Symbols are single characters except that a character followed by ``r``,
``i`` or ``l`` forms a two-character symbol (``Br``, ``Si``, ``Cl``); symbols
outside ChemNet's 35-symbol vocabulary map to its unknown symbol. The one-hot
matrix (350 positions) is scaled by 1/35. The activations are those of ChemNet's
last LSTM layer (512 units); FCD is the Frechet distance of Gaussians fitted to
the activations of the two sets.

FCD estimated from a few thousand molecules is biased upwards (the 512 x 512
covariance is poorly determined), so always report the sample size with it.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from fcd import load_ref_model

__all__ = [
    "chemnet_activations",
    "chemnet_statistics",
    "gaussian_statistics",
    "GaussianMoments",
    "frechet_distance",
    "encode_for_chemnet",
]

_VOCAB = (
    "C", "N", "O", "H", "F", "Cl", "P", "B", "Br", "S", "I", "Si", "#", "(", ")", "+", "-",
    "1", "2", "3", "4", "5", "6", "7", "8", "=", "[", "]", "@", "c", "n", "o", "s", "X", ".",
)  # fmt: skip
_INDEX = {symbol: i for i, symbol in enumerate(_VOCAB)}
_UNKNOWN = _INDEX["X"]
_END = _INDEX["."]
_SECOND_LETTERS = frozenset("ril")
_LENGTH = 350


def encode_for_chemnet(smiles: str) -> np.ndarray:
    """Symbol indices of one SMILES, end symbol included, ``-1`` as padding."""
    text = smiles + "."
    out = np.full(_LENGTH, -1, dtype=np.int16)
    src = dst = 0
    while True:
        step = 2 if text[src + 1] in _SECOND_LETTERS else 1
        out[dst] = _INDEX.get(text[src : src + step], _UNKNOWN)
        src += step
        dst += 1
        if text[src] == "." or dst == _LENGTH - 1:
            out[dst] = _END
            return out


#: ChemNet batch on the CPU: a batch of 512 allocates a 367 MB LSTM output that the allocator maps
#: and unmaps each time (16 % of the CPU in page faults); at 32 its buffers are reused, 22 % less CPU
#: in all and the same activations bit for bit.
CPU_BATCH = 32
#: ChemNet batch on a GPU.
GPU_BATCH = 512


def chemnet_activations(
    smiles: list[str], batch_size: int | None = None, device: str = "cpu"
) -> np.ndarray:
    """ChemNet activations, ``float32`` array of shape ``(len(smiles), 512)``.

    ``batch_size`` ``None`` is :data:`CPU_BATCH` on the CPU and :data:`GPU_BATCH` elsewhere.
    """
    if batch_size is None:
        batch_size = CPU_BATCH if torch.device(device).type == "cpu" else GPU_BATCH
    model = _chemnet().to(device)
    codes = (
        np.stack([encode_for_chemnet(s) for s in smiles])
        if smiles
        else np.zeros((0, _LENGTH), np.int16)
    )
    out = np.zeros((len(smiles), 512), dtype=np.float32)
    # Full fp32 convolutions on GPUs too (cuDNN would use TF32 on Ampere and later): FCD
    # amplifies small activation errors, and a sharded benchmark must match the single run.
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
        for start in range(0, len(smiles), batch_size):
            batch = torch.from_numpy(codes[start : start + batch_size].astype(np.int64))
            one_hot = torch.zeros(*batch.shape, len(_VOCAB) + 1)
            # Padding (-1) goes to an extra column that is dropped again.
            one_hot.scatter_(
                2, batch.masked_fill(batch < 0, len(_VOCAB)).unsqueeze(-1), 1.0 / len(_VOCAB)
            )
            features = one_hot[:, :, : len(_VOCAB)].transpose(1, 2).contiguous().to(device)
            out[start : start + len(batch)] = model(features).float().cpu().numpy()
    return out


def gaussian_statistics(
    activations: np.ndarray, counts: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased) of activations, rows weighted by integer ``counts``."""
    moments = GaussianMoments(activations.shape[1])
    moments.add(activations, counts)
    return moments.mean, moments.covariance()


#: Molecules whose ChemNet activations are held at once by :func:`chemnet_statistics` (8 MB).
STATISTICS_BLOCK = 4096


def chemnet_statistics(
    smiles: list[str],
    counts: np.ndarray | None = None,
    batch_size: int | None = None,
    device: str = "cpu",
    block: int = STATISTICS_BLOCK,
    progress=None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`gaussian_statistics` of the ChemNet activations of ``smiles``, in flat memory.

    The activations of ``block`` molecules at a time are folded into running
    moments, so a million molecules need megabytes instead of the 2 GB of float32
    activations and the float64 copies that a covariance of all of them makes.
    ``progress`` (a :func:`molgen.utils.progress.progress_bar` handle) advances per block.
    """
    moments = GaussianMoments(512)
    for start in range(0, len(smiles), block):
        part = chemnet_activations(smiles[start : start + block], batch_size=batch_size, device=device)
        moments.add(part, None if counts is None else counts[start : start + block])
        if progress is not None:
            progress.advance(len(part))
    return moments.mean, moments.covariance()


class GaussianMoments:
    """Running count, mean and scatter matrix of weighted rows.

    Blocks are combined with the pairwise update of Chan, Golub and LeVeque
    (1979), which stays accurate where the sums of squares would not: adding the
    rows in one block or in many gives the same moments up to rounding.
    """

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.mean = np.zeros(dim)
        self.scatter = np.zeros((dim, dim))

    def add(self, values: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Fold in rows ``values`` ``[m, dim]``, each counted ``counts[i]`` times (default once)."""
        x = np.asarray(values, dtype=np.float64)
        w = np.ones(len(x)) if counts is None else np.asarray(counts, dtype=np.int64).astype(np.float64)
        n = int(w.sum())
        if n == 0:
            return
        mean = w @ x / n
        centred = x - mean
        self.merge(n, mean, (centred * w[:, None]).T @ centred)

    def merge(self, n: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        """Fold in the moments of another set: ``n`` rows with this ``mean`` and ``scatter``."""
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.scatter = self.scatter + scatter + np.outer(delta, delta) * (self.n * n / total)
        self.mean = self.mean + delta * (n / total)
        self.n = total

    def covariance(self) -> np.ndarray:
        """The unbiased covariance (NaN below two rows)."""
        if self.n < 2:
            return np.full_like(self.scatter, np.nan)
        return self.scatter / (self.n - 1)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    The trace of the matrix square root is the sum of the square roots of the
    eigenvalues of the symmetric matrix ``S1^(1/2) S2 S1^(1/2)``, which is
    numerically safer than ``scipy.linalg.sqrtm`` of the non-symmetric product.
    """
    values, vectors = np.linalg.eigh(sigma1)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    middle = root1 @ sigma2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


@functools.cache
def _chemnet() -> torch.nn.Module:
    model = load_ref_model()
    model.eval()
    return model
