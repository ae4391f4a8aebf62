"""Bayesian optimization in a VAE's latent space: a BoTorch GP, batch Thompson sampling, trust regions.

The recipe follows TuRBO (Eriksson et al. 2019, "Scalable global optimization
via local Bayesian optimization") as used for molecules by LOL-BO (Maus et al.
2022), with these choices of our own:

* **Surrogate.** By default (``surrogate="tanimoto"``) the GP does not read
  latent coordinates at all: each batch decodes its trust-region candidates
  first, keeps the distinct molecules not scored yet, and Thompson-samples a GP
  with a Tanimoto kernel on their Morgan fingerprints (PMO's GP BO kernel),
  fitted on the scored molecules most similar to the region's centre. Many
  objectives (similarity, rediscovery, MPOs built on them) follow the
  similarity of molecules, which the kernel measures directly and latent
  distance only loosely. The latent space still bounds the search: candidates
  come from the trust region, a cube of side ``length``.
  ``surrogate="latent"`` is the classic latent-space GP.
* **Search space.** A sequence VAE uses only some latent dimensions (the
  default model: about 33 of 128 carry information); the rest are ignored by
  the decoder. The GP therefore works on the top ``dims`` principal
  directions of encoded training molecules, whitened and boxed to
  ``[-bound, bound]``, mapped to the unit cube (``projection="none"`` uses the
  full latent space, scaled the same way).
* **Trust region.** A box around the best point of the current run, its side
  ``length`` times the GP's relative lengthscales (latent surrogate); it doubles after
  ``success_tol`` improving batches, halves after ``failure_tol`` batches that
  do not improve, and a region shorter than ``length_min`` restarts at the
  best molecule not yet used as a centre. Data are kept across restarts; the
  GP is fitted on the ``max_train`` points nearest the centre.
* **Batch selection with de-duplication** (latent surrogate). Many latent points decode to the
  same molecule. Thompson sampling (``acquisition="ts"``) ranks up to
  ``oversample * batch_size`` candidates; they are decoded in that order and
  sent to the oracle until ``batch_size`` *new* molecules are charged. Invalid
  decodes and repeats cost nothing (the oracle counts them); a repeat still
  teaches the GP, with its known score. ``acquisition="qlogei"`` takes the
  batch from qLogEI (sequential greedy) and falls back on candidates ranked by
  analytic LogEI.

* **Weighted retraining** (``finetune_every``, 0 turns it off). LOL-BO updates its
  VAE on the best molecules found so far; we do the same with the rank
  weights of Tripp et al. (2020, "Sample-efficient optimization in the latent
  space of deep generative models via weighted retraining"): every
  ``finetune_every`` batches a private copy of the VAE takes a few Adam steps
  on scored molecules drawn with weight ``1 / (k N + rank)``, and every stored
  point moves to its molecule's code under the updated encoder. The decoder
  then spends more of the trust region on molecules like the best ones. The
  caller's model is never changed.

Objective failures (NaN, an exception for one molecule) are logged by the
oracle and left out of the GP's data; the run continues.
"""

from __future__ import annotations

import copy
import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from molgen.chem.fingerprints import fingerprint_array, tanimoto_matrix
from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions
from molgen.optimize.api import MethodContext, register_method
from molgen.optimize.oracle import Oracle
from molgen.utils.progress import progress_bar

__all__ = ["BOConfig", "BORun", "LatentBox", "optimize_bo"]


@dataclass
class BOConfig(ConfigMixin):
    """Settings of :func:`optimize_bo`; unknown keys are rejected by :meth:`from_dict`."""

    _config_label = "bo options"

    batch_size: int = 50  # new molecules charged per batch
    n_init: int = 100  # initial design (prior samples, or jittered encodings of --start molecules)
    projection: Literal["pca", "none"] = "pca"
    dims: int = 32  # principal directions kept (pca)
    projection_molecules: int = 2000  # encoded training molecules the PCA is computed on
    bound: float = 3.5  # search box, in standard deviations along each direction
    acquisition: Literal["ts", "qlogei"] = "ts"
    # What the GP reads: ("tanimoto") the Morgan fingerprint of the molecule a point decodes to, or
    # ("latent") the point's coordinates. With "tanimoto" every candidate is decoded before it is ranked
    # (decoding is cheap; oracle calls are not), repeats and known molecules are dropped, and Thompson
    # sampling ranks the distinct new molecules under a Tanimoto-kernel GP (the kernel of PMO's GP BO
    # baseline). The trust region still lives in the latent box. On the 20 PMO tasks at 10,000 calls it
    # raised the AUC sum from 9.846 to 10.871 at 6 % less CPU (docs/pmo_benchmarks.md).
    surrogate: Literal["tanimoto", "latent"] = "tanimoto"
    # What the GP is fitted to: the scores' ranks mapped to normal quantiles (a Gaussian copula), or
    # the scores standardised. Ranks give a landscape of rare spikes above a flat floor a slope to
    # follow; on 4 PMO tasks x 2 seeds they won 5 of 6 contested runs (docs/pmo_benchmarks.md).
    y_transform: Literal["standardize", "rank"] = "rank"
    n_candidates: int = 1000  # Thompson-sampling candidates per batch
    oversample: float = 4.0  # decode up to this many times batch_size candidates to find new molecules
    max_train: int = 300  # GP training points, nearest the trust-region centre
    fit_iters: int = 75  # L-BFGS iterations of the GP hyperparameter fit
    # Start each fit from the hyperparameters of the region's previous fit instead of the prior's mode
    # (reset on restarts). Off by default: on 2 PMO tasks x 2 seeds it saved 8 % of the CPU for a
    # slightly lower AUC sum (1.885 vs 1.919), and capping warm fits at 25 iterations saved 38 % but
    # lost more (1.641); docs/pmo_benchmarks.md.
    warm_start: bool = False
    warm_fit_iters: int = 75  # L-BFGS iterations of a warm-started fit
    length_init: float = 0.8
    length_min: float = 0.5**7
    length_max: float = 1.6
    success_tol: int = 3
    failure_tol: int = 0  # 0: TuRBO's ceil(max(4, dims) / batch_size)
    start_noise: float = 0.1  # std (whitened units) of the jitter around encoded start molecules
    max_stalled: int = 25  # stop after this many batches in a row without a new molecule
    patience: int = 10  # restart a region whose best has not improved for this many batches (0: TuRBO's length rule alone)
    # Weighted retraining (Tripp et al. 2020; LOL-BO updates its VAE the same way): every
    # ``finetune_every`` batches a private copy of the VAE takes ``finetune_steps`` Adam steps on
    # scored molecules drawn with weight 1 / (finetune_k * N + rank), so that the decoder spends
    # more of the latent space on molecules like the best ones. 0: the VAE is never changed.
    # Default 10 since 2026-11-23 (PMO at 10,000 calls: celecoxib 0.526 -> 0.713; docs/pmo_benchmarks.md).
    finetune_every: int = 10
    finetune_steps: int = 20
    finetune_batch: int = 64
    finetune_lr: float = 3e-4
    finetune_k: float = 1e-3

    def __post_init__(self) -> None:
        for name in ("batch_size", "n_init", "dims", "n_candidates", "max_train", "fit_iters", "warm_fit_iters", "success_tol", "max_stalled"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"bo {name} must be >= 1")
        if self.projection not in ("pca", "none"):
            raise ConfigError(f"bo projection must be 'pca' or 'none', got {self.projection!r}")
        if self.y_transform not in ("standardize", "rank"):
            raise ConfigError(f"bo y_transform must be 'standardize' or 'rank', got {self.y_transform!r}")
        if self.acquisition not in ("ts", "qlogei"):
            raise ConfigError(f"bo acquisition must be 'ts' or 'qlogei', got {self.acquisition!r}")
        if self.surrogate not in ("latent", "tanimoto"):
            raise ConfigError(f"bo surrogate must be 'latent' or 'tanimoto', got {self.surrogate!r}")
        if self.surrogate == "tanimoto" and self.acquisition != "ts":
            raise ConfigError("bo acquisition=qlogei optimises over latent coordinates; add --option surrogate=latent (the default surrogate, tanimoto, ranks decoded molecules by Thompson sampling)")
        if self.finetune_every < 0 or self.finetune_steps < 1 or self.finetune_batch < 1 or self.finetune_lr <= 0 or self.finetune_k <= 0:
            raise ConfigError("bo finetune_every must be >= 0 (0: off), finetune_steps and finetune_batch >= 1, finetune_lr and finetune_k > 0")
        if self.oversample < 1 or self.bound <= 0 or self.start_noise < 0 or self.failure_tol < 0 or self.patience < 0:
            raise ConfigError("bo oversample must be >= 1, bound > 0, start_noise >= 0, failure_tol >= 0, patience >= 0")
        if not 0 < self.length_min < self.length_init <= self.length_max:
            raise ConfigError("bo trust-region lengths must satisfy 0 < length_min < length_init <= length_max")


@dataclass
class BORun:
    """What the optimizer did besides scoring."""

    batches: list[dict[str, Any]] = field(default_factory=list)  # per batch: length, new, best, restart
    restarts: int = 0
    decoded: int = 0
    stopped: str = "budget"  # budget | stalled
    space: dict[str, Any] = field(default_factory=dict)
    finetunes: list[dict[str, Any]] = field(default_factory=list)  # per VAE update: step, molecules, batch loss of its first and last steps


class LatentBox:
    """The unit cube the GP searches, mapped affinely onto a (sub)space of the latent space."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, scale: np.ndarray, bound: float, explained: float = 1.0) -> None:
        self.mean, self.basis, self.scale, self.bound = mean, basis, scale, bound  # basis: [dims, latent]
        self.explained = explained

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
        u = (x.detach().cpu().double().numpy() * 2 - 1) * self.bound
        return (self.mean + (u * self.scale) @ self.basis).astype(np.float32)

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


def optimize_bo(vae, oracle: Oracle, config: BOConfig | None = None, start_smiles: list[str] | None = None, seed: int = 0, show_progress: bool = False) -> BORun:
    """Run latent-space Bayesian optimization until the oracle's budget is spent (or no new molecules come).

    Args:
        vae: a :class:`~molgen.vae.MoleculeVAE` (or any object with its ``encode``/``decode``/``config.latent_dim``).
        oracle: scores decoded molecules (objective, constraints, budget, log); needs a finite budget.
        start_smiles: seed molecules for the initial design (None: prior samples).
    """
    cfg = config or BOConfig()
    if oracle.budget is None:
        raise ConfigError("Bayesian optimization needs a finite --budget of oracle calls")
    gen = torch.Generator().manual_seed(seed)
    tuner = _Tuner(vae, cfg, seed) if cfg.finetune_every else None
    vae = tuner.vae if tuner else vae  # the caller's model is never changed
    box = LatentBox.build(vae, cfg)
    run = BORun(space={"projection": cfg.projection, "dims": box.dims, "explained_variance": round(box.explained, 4)})
    start_x = _encode_starts(vae, box, start_smiles) if start_smiles else None
    data = _Data(box.dims)
    searcher = _Searcher(vae, oracle, box, data, run, start_x, _Molecules() if cfg.surrogate == "tanimoto" else None)
    failure_tol = cfg.failure_tol or math.ceil(max(4, box.dims) / cfg.batch_size)
    with progress_bar(oracle.budget, "bo", enabled=show_progress, unit="calls") as bar:
        searcher.evaluate(_initial_design(box, cfg, start_x, gen), min(cfg.n_init, int(oracle.remaining)), step=0)
        bar.advance(oracle.calls)
        if not len(data):
            raise ConfigError("no molecule of the initial design got a score; check the objective (see the oracle log)")
        region = _Region(cfg.length_init, int(data.y.argmax()), float(data.y.max()))
        centers = {data.smiles[region.center]}
        stalled, step, retrain_s = 0, 0, 0.0
        while not oracle.exhausted:
            step += 1
            calls, fit_start = oracle.calls, time.perf_counter()
            if cfg.surrogate == "tanimoto":
                ranked, decoded = _propose_molecules(searcher, region, cfg, gen, seed + step)
            else:
                ranked, decoded = _propose(data, region, box.dims, cfg, gen, seed + step), None
            fit_s = time.perf_counter() - fit_start  # GP fit and acquisition (and decoding, for tanimoto)
            want = min(cfg.batch_size, int(oracle.remaining))
            scores = searcher.evaluate(ranked, want, step, decoded)
            stalled = stalled + 1 if not scores else 0
            restarted = _update(region, data, scores, cfg, failure_tol, centers, starved=len(scores) < want / 2 and not oracle.exhausted)
            run.restarts += restarted
            best = float(np.nanmax(oracle.best_so_far())) if oracle.calls else math.nan
            run.batches.append({"step": step, "new": len(scores), "length": round(region.length, 5), "best": best, "restart": restarted})
            bar.advance(oracle.calls - calls, best=best, gp_fit_s=fit_s, retrain_s=retrain_s)
            if stalled >= cfg.max_stalled:
                run.stopped = "stalled"
                break
            if tuner and step % cfg.finetune_every == 0 and not oracle.exhausted:
                retrain_start = time.perf_counter()
                run.finetunes.append({"step": step, **tuner.update(data)})
                tuner.reencode(data, box)
                retrain_s = time.perf_counter() - retrain_start
                if start_smiles:  # origins are found by distance to the starts' codes, which moved too
                    searcher.start_x = _encode_starts(vae, box, start_smiles)
    return run


class _Tuner:
    """Weighted retraining of a private copy of the VAE on the molecules scored so far."""

    def __init__(self, vae, cfg: BOConfig, seed: int) -> None:
        if not isinstance(getattr(vae, "model", None), torch.nn.Module) or not hasattr(vae, "tokenize"):
            raise ConfigError("bo finetune_every needs a trained molecular VAE (a molgen checkpoint); use finetune_every=0")
        self.vae = copy.deepcopy(vae)
        self.cfg = cfg
        self.beta = float(vae.meta.get("training", {}).get("kl", {}).get("beta", 1.0))  # the KL weight it was trained with
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.opt = torch.optim.Adam(self.vae.model.parameters(), lr=cfg.finetune_lr)

    def update(self, data: _Data) -> dict[str, Any]:
        """``finetune_steps`` Adam steps on batches drawn by rank weight; returns the batch losses of the first and last steps."""
        scores = dict(zip(data.smiles, data.y.tolist()))  # one entry per molecule (repeats score the same)
        ranked = sorted(scores, key=scores.__getitem__, reverse=True)
        weights = 1.0 / (self.cfg.finetune_k * len(ranked) + torch.arange(len(ranked), dtype=torch.float64))
        draws = torch.multinomial(weights, self.cfg.finetune_steps * self.cfg.finetune_batch, replacement=True, generator=self.gen)
        model, losses = self.vae.model, []
        model.train()
        try:
            for batch in draws.view(self.cfg.finetune_steps, -1).tolist():
                smiles = [ranked[i] for i in batch]
                ids, lengths, kept = self.vae.tokenize(smiles)
                if not len(ids):
                    continue
                cond = self.vae.own_condition_tensor([smiles[i] for i in kept])  # a conditional model learns from its own properties
                cond = None if cond is None else cond.to(self.vae.device)
                out = model(ids.to(self.vae.device), lengths, beta=self.beta, generator=self.gen, cond=cond)
                self.opt.zero_grad(set_to_none=True)
                out.loss.backward()
                self.opt.step()
                losses.append(out.loss.item())
        finally:
            model.eval()
        return {"molecules": len(ranked), "loss_first": round(losses[0], 3) if losses else None, "loss_last": round(losses[-1], 3) if losses else None}

    def reencode(self, data: _Data, box: LatentBox) -> None:
        """Move every stored point to its molecule's code under the updated encoder (trust-region centres included)."""
        distinct = list(dict.fromkeys(data.smiles))
        z, kept = self.vae.encode(distinct)
        where = {distinct[i]: row for row, i in enumerate(kept)}
        x = box.from_latent(z)
        rows = [i for i, s in enumerate(data.smiles) if s in where]
        data.x[rows] = x[[where[data.smiles[i]] for i in rows]].to(data.x.dtype)


def _encode_starts(vae, box: LatentBox, smiles: list[str]) -> torch.Tensor:
    z, kept = vae.encode(smiles)
    if len(kept) != len(smiles):
        missing = [smiles[i] for i in range(len(smiles)) if i not in set(kept)]
        raise ConfigError(f"start molecule {missing[0]!r} cannot be written with this model's vocabulary or length limit; pick another")
    return box.from_latent(z)


def _initial_design(box: LatentBox, cfg: BOConfig, start_x: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """Ranked initial points: the starts and jittered copies of them, or N(0, I) draws in whitened units."""
    n = math.ceil(cfg.n_init * cfg.oversample)
    if start_x is None:
        return box.whitened_to_unit(torch.randn(n, box.dims, generator=gen, dtype=torch.float64))
    reps = start_x.repeat(math.ceil(n / len(start_x)), 1)[:n]
    jitter = torch.randn(reps.shape, generator=gen, dtype=torch.float64) * cfg.start_noise / (2 * box.bound)
    jitter[: len(start_x)] = 0
    return (reps + jitter).clamp(0, 1)


def _update(region: _Region, data: _Data, scores: list[float], cfg: BOConfig, failure_tol: int, centers: set[str], starved: bool = False) -> bool:
    """TuRBO's length rule; returns True when the region restarted.

    ``starved``: the batch found fewer than half the new molecules it wanted, because the region is
    small against the decoder's resolution (many points decode to one molecule). That is not the
    surrogate's failure: the region doubles instead, and restarts once at full length.
    """
    finite = [s for s in scores if math.isfinite(s)]
    batch_best = max(finite) if finite else -math.inf
    improved = batch_best > region.best + 1e-3 * abs(region.best)
    region.stale = 0 if improved else region.stale + 1
    if cfg.patience and region.stale >= cfg.patience:
        return _restart(region, data, cfg, centers)
    if starved and batch_best <= region.best:
        if region.length >= cfg.length_max:
            return _restart(region, data, cfg, centers)
        region.length = min(2 * region.length, cfg.length_max)
        return False
    if improved:
        region.successes, region.failures = region.successes + 1, 0
        region.best = batch_best
        region.center = _index_of(data, batch_best)
    else:
        region.successes, region.failures = 0, region.failures + 1
    if region.successes >= cfg.success_tol:
        region.length, region.successes = min(2 * region.length, cfg.length_max), 0
    elif region.failures >= failure_tol:
        region.length, region.failures = region.length / 2, 0
    if region.length >= cfg.length_min:
        return False
    return _restart(region, data, cfg, centers)


def _restart(region: _Region, data: _Data, cfg: BOConfig, centers: set[str]) -> bool:
    """A fresh region at the best molecule that has not been a centre yet."""
    order = torch.argsort(data.y, descending=True).tolist()
    fresh = next((i for i in order if data.smiles[i] not in centers), order[0])
    centers.add(data.smiles[fresh])
    region.length, region.center, region.best = cfg.length_init, fresh, float(data.y[fresh])
    region.successes = region.failures = region.stale = 0
    region.hypers = None
    return True


def _index_of(data: _Data, value: float) -> int:
    return int(torch.nonzero(data.y == value)[-1])


def _propose(data: _Data, region: _Region, dims: int, cfg: BOConfig, gen: torch.Generator, seed: int) -> torch.Tensor:
    """Candidates in the trust region, best first by the acquisition function."""
    center = data.x[region.center]
    idx = torch.cdist(data.x, center[None]).squeeze(1).argsort()[: cfg.max_train]
    y = _copula(data.y[idx]) if cfg.y_transform == "rank" else data.y[idx]
    warm = region.hypers if cfg.warm_start else None
    model = _fit_gp(data.x[idx], y, cfg.fit_iters if warm is None else cfg.warm_fit_iters, warm)
    if cfg.warm_start:
        region.hypers = _hypers(model)
    lengthscale = model.covar_module.lengthscale.detach().reshape(-1).double() if hasattr(model.covar_module, "lengthscale") else torch.ones(dims)
    # TuRBO's shape: sides in proportion to the lengthscales (geometric mean 1), here at most 4x from the
    # mean either way, so that no side is too thin for the decoder to change its output along it.
    weights = (lengthscale / lengthscale.log().mean().exp()).clamp(0.25, 4.0)
    lower = (center - weights * region.length / 2).clamp(0, 1)
    upper = (center + weights * region.length / 2).clamp(0, 1)
    cand = _candidates(center, lower, upper, cfg.n_candidates, gen, seed)
    n_rank = math.ceil(cfg.batch_size * cfg.oversample)
    if cfg.acquisition == "qlogei":
        with torch.random.fork_rng(), _exact_gp(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            return _rank_logei(model, y.max(), cand, lower, upper, cfg.batch_size, n_rank)
    return cand[_thompson_order(model, cand, n_rank, seed)]


def _propose_molecules(searcher: _Searcher, region: _Region, cfg: BOConfig, gen: torch.Generator, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Distinct new molecules decoded from trust-region candidates, best first by a Tanimoto GP's Thompson samples."""
    data, molecules = searcher.data, searcher.molecules
    center = data.x[region.center]
    lower, upper = (center - region.length / 2).clamp(0, 1), (center + region.length / 2).clamp(0, 1)
    cand = _candidates(center, lower, upper, cfg.n_candidates, gen, seed)
    first: dict[str, int] = {}  # each new molecule and the first candidate that decodes to it
    for i, s in enumerate(searcher.decode(cand)):
        if s and s not in searcher.oracle.records and s not in first:
            first[s] = i
    if not first:
        return cand[:0], []
    new = list(first)
    fps, y = molecules.nearest(data.smiles[region.center], cfg.max_train)
    model = _fit_gp(fps, _copula(y) if cfg.y_transform == "rank" else y, cfg.fit_iters, kernel=_tanimoto_kernel())
    cand_fps = torch.from_numpy(fingerprint_array(new, n_bits=_FP_BITS, n_jobs=1)).double()
    order = _thompson_order(model, cand_fps, min(math.ceil(cfg.batch_size * cfg.oversample), len(new)), seed).tolist()
    return cand[[first[new[i]] for i in order]], [new[i] for i in order]


def _thompson_order(model, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` distinct rows of ``x``, each the best of one joint posterior sample (seeded, global RNG untouched)."""
    with torch.random.fork_rng(), _exact_gp(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jitter added to near-singular covariances of close candidates
        torch.manual_seed(seed)
        samples = model.posterior(x).rsample(torch.Size([n])).squeeze(-1)  # [n, len(x)]
    return _distinct_argmax(samples)


@functools.cache
def _tanimoto_kernel_class():
    from gpytorch.kernels import Kernel

    class TanimotoKernel(Kernel):
        """k(a, b) = <a, b> / (|a|^2 + |b|^2 - <a, b>) on bit (or count) vectors; no hyperparameters.

        Written here rather than taken from GAUCHE, whose package requires jupyterlab and seaborn.
        """

        has_lengthscale = False
        is_stationary = False

        def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params) -> torch.Tensor:
            if diag:
                dot = (x1 * x2).sum(-1)
                return dot / ((x1 * x1).sum(-1) + (x2 * x2).sum(-1) - dot).clamp_min(1e-9)
            dot = x1 @ x2.transpose(-1, -2)
            norms = (x1 * x1).sum(-1, keepdim=True) + (x2 * x2).sum(-1, keepdim=True).transpose(-1, -2)
            return dot / (norms - dot).clamp_min(1e-9)

    return TanimotoKernel


def _tanimoto_kernel():
    from gpytorch.kernels import ScaleKernel

    return ScaleKernel(_tanimoto_kernel_class()())


def _copula(y: torch.Tensor) -> torch.Tensor:
    """Normal quantiles of the ranks of ``y`` (ties share their mean rank): order kept, scale dropped."""
    values, inverse = torch.unique(y, return_inverse=True)
    order = torch.argsort(y, stable=True)
    ranks = torch.empty_like(y)
    ranks[order] = torch.arange(1, len(y) + 1, dtype=y.dtype)
    mean_rank = torch.zeros(len(values), dtype=y.dtype).index_add_(0, inverse, ranks) / torch.bincount(inverse, minlength=len(values))
    return torch.special.ndtri((mean_rank[inverse] - 0.5) / len(y))


_HYPER_PREFIXES = ("covar_module.", "likelihood.", "mean_module.")


def _hypers(model) -> dict:
    """The fitted hyperparameters of a GP (kernel, noise, mean), not its data or outcome transform."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(_HYPER_PREFIXES)}


def _fit_gp(x: torch.Tensor, y: torch.Tensor, iters: int, init: dict | None = None, kernel=None):
    from botorch.exceptions import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    with warnings.catch_warnings(), _exact_gp():
        # botorch's advisory warnings: input scaling, optimizer status, and (at construction) targets
        # with zero spread, which every batch of a flat objective has (valsartan_smarts: 452 of them)
        warnings.simplefilter("ignore")
        model = SingleTaskGP(x, y[:, None], covar_module=kernel)  # standardises y; default kernel: dimension-scaled lengthscale prior
        if init is not None:
            model.load_state_dict(init, strict=False)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": iters}})
        except ModelFittingError:
            pass  # keep the prior-mode hyperparameters; the region logic still works
    return model.eval()


def _exact_gp():
    import gpytorch

    return gpytorch.settings.max_cholesky_size(10**6)


def _candidates(center: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, n: int, gen: torch.Generator, seed: int) -> torch.Tensor:
    """TuRBO's candidates: Sobol points in the box, each changing a random subset of about 20 coordinates."""
    dims = len(center)
    sobol = torch.quasirandom.SobolEngine(dims, scramble=True, seed=seed).draw(n).double()
    points = lower + (upper - lower) * sobol
    mask = torch.rand(n, dims, generator=gen, dtype=torch.float64) <= min(1.0, 20.0 / dims)
    empty = ~mask.any(1)
    mask[empty, torch.randint(dims, (int(empty.sum()),), generator=gen)] = True
    return torch.where(mask, points, center.expand(n, dims))


def _distinct_argmax(samples: torch.Tensor) -> torch.Tensor:
    """Per posterior sample, its best candidate not yet taken: a ranking of distinct candidates."""
    taken = torch.zeros(samples.shape[1], dtype=torch.bool)
    order = []
    for row in samples:
        best = int(row.masked_fill(taken, -math.inf).argmax())
        taken[best] = True
        order.append(best)
    return torch.tensor(order, dtype=torch.long)


def _rank_logei(model, best_f: torch.Tensor, cand: torch.Tensor, lower, upper, q: int, n_rank: int) -> torch.Tensor:
    from botorch.acquisition.analytic import LogExpectedImprovement
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.optim import optimize_acqf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch, _ = optimize_acqf(
            qLogExpectedImprovement(model, best_f=best_f), torch.stack([lower, upper]), q=q, num_restarts=2, raw_samples=128,
            sequential=True, options={"maxiter": 50},
        )
    with torch.no_grad():
        score = LogExpectedImprovement(model, best_f=best_f)(cand[:, None, :])
    rest = cand[score.argsort(descending=True)[: max(0, n_rank - q)]]
    return torch.cat([batch.detach(), rest])


def _run_bo(ctx: MethodContext) -> dict[str, Any]:
    cfg = BOConfig.from_dict(dict(ctx.options))
    run = optimize_bo(ctx.vae, ctx.oracle, cfg, ctx.starts or None, ctx.seed, ctx.show_progress)
    return {
        "config": cfg.to_dict(),
        "space": run.space,
        "decoded": run.decoded,
        "batches": len(run.batches),
        "restarts": run.restarts,
        "stopped": run.stopped,
        "finetunes": run.finetunes,
        "trajectory": run.batches,
    }


register_method("bo", _run_bo)
