"""The search space of latent BO: the latent box, the scored points and molecules, and the decode-and-score loop."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from molgen.chem.fingerprints import fingerprint_array, tanimoto_matrix
from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions
from molgen.optimize.bo_config import BOConfig, BORun
from molgen.optimize.oracle import Oracle

# The bo_* modules are one package split by concern; their _private helpers are shared among them only.
__all__ = ["LatentBox"]


class LatentBox:
    """The unit cube the GP searches, mapped affinely onto a (sub)space of the latent space.

    A principal subspace (32 of 128 directions) loses what makes a given molecule
    itself: the point of a lead's code in the box decodes to an unrelated molecule
    (Tanimoto 0.08 to the lead on the ZINC model). :meth:`anchor` keeps start
    molecules: each start's residual (the part of its code outside the box, and
    what the box clipped) is added back to every point whose nearest start it is,
    so the start's own point decodes from exactly its code and its neighbourhood
    is the lead's neighbourhood.
    """

    def __init__(self, mean: np.ndarray, basis: np.ndarray, scale: np.ndarray, bound: float, explained: float = 1.0) -> None:
        self.mean, self.basis, self.scale, self.bound = mean, basis, scale, bound  # basis: [dims, latent]
        self.explained = explained
        self.anchors: torch.Tensor | None = None  # [starts, dims] unit coordinates of the anchored starts
        self.residuals: np.ndarray | None = None  # [starts, latent] what each start's code has beyond its box point

    def anchor(self, z: np.ndarray) -> torch.Tensor:
        """Anchor the box on codes ``z`` (start molecules); returns their unit coordinates."""
        x = self.from_latent(z)
        self.residuals = np.asarray(z, dtype=np.float64) - self._base(x)
        self.anchors = x
        return x

    @property
    def dims(self) -> int:
        return self.basis.shape[0]

    @classmethod
    def build(cls, vae, cfg: BOConfig) -> LatentBox:
        latent = vae.config.latent_dim
        if cfg.projection == "none":
            return cls(np.zeros(latent), np.eye(latent), np.ones(latent), cfg.bound)
        from molgen.datasets import default_training_smiles

        z, _ = vae.encode(default_training_smiles(limit=cfg.projection_molecules))
        dims = min(cfg.dims, latent)
        if len(z) < 2 * dims:
            raise ConfigError(f"the model encodes only {len(z)} of the embedded training molecules; use --option projection=none")
        mean = z.mean(0).astype(np.float64)
        _, s, vt = np.linalg.svd(z - mean, full_matrices=False)
        scale = s[:dims] / math.sqrt(len(z) - 1)
        explained = float((s[:dims] ** 2).sum() / (s**2).sum())
        return cls(mean, vt[:dims].astype(np.float64), np.maximum(scale, 1e-6), cfg.bound, explained)

    def to_latent(self, x: torch.Tensor) -> np.ndarray:
        z = self._base(x)
        if self.anchors is not None and len(z):
            nearest = torch.cdist(x.detach().cpu().double(), self.anchors).argmin(1).numpy()
            z = z + self.residuals[nearest]
        return z.astype(np.float32)

    def _base(self, x: torch.Tensor) -> np.ndarray:
        u = (x.detach().cpu().double().numpy() * 2 - 1) * self.bound
        return self.mean + (u * self.scale) @ self.basis

    def from_latent(self, z: np.ndarray) -> torch.Tensor:
        u = ((np.asarray(z, dtype=np.float64) - self.mean) @ self.basis.T) / self.scale
        return torch.from_numpy(np.clip((u / self.bound + 1) / 2, 0, 1))

    def whitened_to_unit(self, u: torch.Tensor) -> torch.Tensor:
        return ((u / self.bound + 1) / 2).clamp(0, 1)


@dataclass
class _Region:
    """TuRBO state of the current trust region."""

    length: float
    center: int  # index into the data
    best: float
    successes: int = 0
    failures: int = 0
    stale: int = 0  # batches since the best last improved
    hypers: dict | None = None  # GP hyperparameters of the last fit in this region (warm start)
    below_floor: int = 0  # new molecules of the last proposal dropped below the similarity floor


class _Data:
    """Every decoded point with a score (first-time or repeat), in unit coordinates."""

    def __init__(self, dims: int) -> None:
        self.x = torch.zeros(0, dims, dtype=torch.float64)
        self.y = torch.zeros(0, dtype=torch.float64)
        self.smiles: list[str] = []

    def add(self, x: torch.Tensor, y: list[float], smiles: list[str]) -> None:
        self.x = torch.cat([self.x, x.double()])
        self.y = torch.cat([self.y, torch.tensor(y, dtype=torch.float64)])
        self.smiles.extend(smiles)

    def __len__(self) -> int:
        return len(self.y)


class _Molecules:
    """Distinct scored molecules with their Morgan fingerprints (the Tanimoto surrogate's data)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.scores: list[float] = []
        self.fps = np.zeros((0, _FP_BITS), dtype=np.uint8)

    def add(self, smiles: list[str], scores: list[float]) -> None:
        fresh = [(s, y) for s, y in dict(zip(smiles, scores)).items() if s not in self.index]
        if not fresh:
            return
        for s, y in fresh:
            self.index[s] = len(self.scores)
            self.scores.append(y)
        self.fps = np.concatenate([self.fps, fingerprint_array([s for s, _ in fresh], n_bits=_FP_BITS, n_jobs=1)])

    def nearest(self, smiles: str, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fingerprints and scores of the ``k`` molecules most similar (Tanimoto) to ``smiles``, itself included."""
        i = self.index[smiles]
        sim = tanimoto_matrix(self.fps, self.fps[i : i + 1])[:, 0]
        idx = np.argsort(-sim, kind="stable")[:k]
        return torch.from_numpy(self.fps[idx]).double(), torch.tensor(self.scores, dtype=torch.float64)[idx]


_FP_BITS = 2048  # Morgan radius 2 (ECFP4), as in PMO's GP BO


class _Searcher:
    """Decodes ranked candidates and scores them until enough new molecules are charged."""

    def __init__(self, vae, oracle: Oracle, box: LatentBox, data: _Data, run: BORun, start_x: torch.Tensor | None, molecules: _Molecules | None = None) -> None:
        self.vae, self.oracle, self.box, self.data, self.run, self.start_x = vae, oracle, box, data, run, start_x
        self.molecules = molecules

    def decode(self, x: torch.Tensor) -> list[str | None]:
        smiles = self.vae.decode(self.box.to_latent(x), DecodeOptions(strategy="greedy"))
        self.run.decoded += len(smiles)
        return smiles

    def evaluate(self, ranked: torch.Tensor, want: int, step: int, decoded: list[str] | None = None) -> list[float]:
        """Scores of the new molecules charged (NaN for failures), at most ``want`` of them.

        ``decoded``: what ``ranked`` decodes to, when the proposal has decoded it already.
        """
        new: list[float] = []
        pos = 0
        while len(new) < want and pos < len(ranked) and not self.oracle.exhausted:
            end = pos + want - len(new)
            chunk = ranked[pos:end]
            smiles = decoded[pos:end] if decoded is not None else self.decode(chunk)
            pos += len(chunk)
            before = self.oracle.calls
            self.oracle(smiles, step=step, origins=self._origins(chunk))
            new.extend(r.score for r in self.oracle.history[before:])
            self._remember(chunk, smiles)
        return new

    def _origins(self, x: torch.Tensor) -> list[int | None] | None:
        if self.start_x is None:
            return None
        return torch.cdist(x.double(), self.start_x).argmin(1).tolist()  # the start whose neighbourhood it is in

    def _remember(self, x: torch.Tensor, smiles: list[str | None]) -> None:
        keep = []
        for i, s in enumerate(smiles):
            record = self.oracle.records.get(s) if s else None
            if record is not None and record.status == "ok" and math.isfinite(record.score):
                keep.append(i)
        if keep:
            kept = [smiles[i] for i in keep]
            scores = [self.oracle.records[s].score for s in kept]
            self.data.add(x[keep], scores, kept)
            if self.molecules is not None:
                self.molecules.add(kept, scores)


def _encode_starts(vae, box: LatentBox, smiles: list[str]) -> torch.Tensor:
    z, kept = vae.encode(smiles)
    if len(kept) != len(smiles):
        missing = [smiles[i] for i in range(len(smiles)) if i not in set(kept)]
        raise ConfigError(f"start molecule {missing[0]!r} cannot be written with this model's vocabulary or length limit; pick another")
    return box.anchor(z)


def _initial_design(box: LatentBox, cfg: BOConfig, start_x: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """Ranked initial points: the starts and jittered copies of them, or N(0, I) draws in whitened units."""
    n = math.ceil(cfg.n_init * cfg.oversample)
    if start_x is None:
        return box.whitened_to_unit(torch.randn(n, box.dims, generator=gen, dtype=torch.float64))
    reps = start_x.repeat(math.ceil(n / len(start_x)), 1)[:n]
    jitter = torch.randn(reps.shape, generator=gen, dtype=torch.float64) * cfg.start_noise / (2 * box.bound)
    jitter[: len(start_x)] = 0
    return (reps + jitter).clamp(0, 1)

