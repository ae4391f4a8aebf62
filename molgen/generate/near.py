"""Stay near a lead: molecules decoded around the latent codes of one or more reference molecules.

:func:`sample_near` encodes the references (posterior means) and decodes points
around them, in one of two modes:

* ``radius`` -- points at a uniformly drawn distance in ``[0, radius]`` from a
  reference's code, in a random direction shaped like the spread of encoded
  training molecules (a sequence VAE leaves most latent dimensions unused, and
  an isotropic step would mostly move along those). The radius is in units of
  that spread's size: 1 is about the distance of a typical training molecule
  from the centre of the code cloud;
* ``similarity=(low, high)`` -- a target Tanimoto range (Morgan radius 2,
  2048 bits): each reference's radius adapts, growing while its molecules are
  too similar and shrinking while they are too far, and only molecules in the
  range are kept.

Each molecule is compared with every reference; ``similarity`` is the largest
Tanimoto and ``reference`` the molecule it belongs to. The result is sorted by
similarity, most similar first; the references themselves are left out.

    >>> frame = sample_near(vae, ["CC(=O)Nc1ccc(O)cc1"], n=50, similarity=(0.4, 0.7))   # doctest: +SKIP
    >>> frame.columns.tolist()                                                        # doctest: +SKIP
    ['smiles', 'similarity', 'reference']
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from molgen import chem
from molgen.errors import ConfigError

__all__ = ["sample_near", "parse_similarity_range"]


def parse_similarity_range(text: str) -> tuple[float, float]:
    """``"0.4..0.7"`` -> (0.4, 0.7); ``"0.5"`` -> (0.5, 1.0)."""
    low, sep, high = text.partition("..")
    try:
        bounds = (float(low), float(high) if sep else 1.0)
    except ValueError:
        raise ConfigError(f"--similarity {text!r} must be LOW..HIGH (e.g. 0.4..0.7) or a minimum (e.g. 0.5)") from None
    if not 0 <= bounds[0] <= bounds[1] <= 1:
        raise ConfigError(f"--similarity {text!r} must satisfy 0 <= low <= high <= 1")
    return bounds


def sample_near(
    vae,
    references: Sequence[str],
    n: int = 100,
    radius: float | None = None,
    similarity: tuple[float, float] | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 256,
    max_decodes: int | None = None,
    require=None,
) -> pd.DataFrame:
    """Up to ``n`` distinct molecules around ``references`` (see the module docstring).

    ``temperature`` 0 decodes greedily (each point to its most likely molecule); ``require`` (a
    :class:`~molgen.generate.substructure.CoreFilter`) keeps only molecules with a core. ``max_decodes``
    defaults to ``max(200 n, 5000)``; fewer molecules than ``n`` then come with a warning.
    """
    from molgen.generate.decoding import DecodeOptions

    if radius is None and similarity is None:
        radius = 0.5
    if radius is not None and not (math.isfinite(radius) and radius > 0):
        raise ConfigError(f"--radius must be a positive number, not {radius}")
    refs = [chem.canonical_smiles(chem.parse_smiles(s)) for s in references]
    if not refs:
        raise ConfigError("give at least one reference molecule (--near SMILES or --near-file)")
    z_ref, kept = vae.encode(refs)
    if len(kept) < len(refs):
        lost = [refs[i] for i in range(len(refs)) if i not in set(kept)]
        raise ConfigError(f"the model cannot encode {lost[0]!r} (unknown tokens or too long); use a model trained on such molecules")
    ref_fps = [chem.morgan_fingerprint(s) for s in refs]
    z_ref = torch.from_numpy(z_ref)
    spread = _spread(vae)
    radii = torch.full((len(refs),), float(radius if radius is not None else 0.25))
    gen = torch.Generator().manual_seed(seed)
    options = DecodeOptions(strategy="greedy") if temperature <= 0 else DecodeOptions(strategy="sample", temperature=temperature)
    limit = max_decodes if max_decodes is not None else max(200 * n, 5000)
    found: dict[str, tuple[float, int]] = {}
    decoded, step = 0, 0
    while len(found) < n and decoded < limit:
        m = min(batch_size, limit - decoded)
        which = torch.randint(len(refs), (m,), generator=gen)
        direction = torch.randn(m, z_ref.shape[1], generator=gen) * spread
        direction /= direction.norm(dim=1, keepdim=True) / spread.norm()
        z = z_ref[which] + direction * (torch.rand(m, 1, generator=gen) * radii[which, None])
        smiles = vae.decode(z, options, seed=seed + step)
        decoded, step = decoded + m, step + 1
        sims = np.full(m, np.nan)
        for i, s in enumerate(smiles):
            if s is None or s in refs:
                continue
            per_ref = chem.bulk_tanimoto(chem.morgan_fingerprint(s), ref_fps)
            j = int(np.argmax(per_ref))
            sims[i] = per_ref[j]
            in_range = similarity is None or similarity[0] <= sims[i] <= similarity[1]
            if in_range and s not in found and len(found) < n and (require is None or require.violation(s) is None):
                found[s] = (float(sims[i]), j)
        if similarity is not None and radius is None:
            _adapt(radii, which, sims, similarity)
    if len(found) < n:
        warnings.warn(f"found {len(found)} of {n} molecules near the references in {decoded:,} decodes; widen the range or radius", stacklevel=2)
    rows = [{"smiles": s, "similarity": sim, "reference": refs[j]} for s, (sim, j) in found.items()]
    frame = pd.DataFrame(rows, columns=["smiles", "similarity", "reference"])
    return frame.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)


def _spread(vae, n: int = 1000) -> torch.Tensor:
    """Per-dimension standard deviation of the codes of ``n`` embedded training molecules (cached per model)."""
    cached = getattr(vae, "_near_spread", None)
    if cached is not None:
        return cached
    from molgen.datasets import default_training_smiles

    z, _ = vae.encode(default_training_smiles(limit=n))
    spread = torch.from_numpy(z.std(0)).float() if len(z) > 1 else torch.ones(vae.config.latent_dim)
    try:
        vae._near_spread = spread
    except AttributeError:  # a model object that takes no new attributes: recompute next time
        pass
    return spread


def _adapt(radii: torch.Tensor, which: torch.Tensor, sims: np.ndarray, target: tuple[float, float]) -> None:
    """Per reference: grow the radius while its molecules are mostly too similar, shrink it while too far."""
    for j in torch.unique(which).tolist():
        values = sims[(which == j).numpy() & np.isfinite(sims)]
        if not len(values):
            radii[j] *= 0.8  # nothing valid: step back toward the reference
            continue
        too_close, too_far = np.mean(values > target[1]), np.mean(values < target[0])
        if too_close > 0.5:
            radii[j] *= 1.25
        elif too_far > 0.5:
            radii[j] *= 0.8
