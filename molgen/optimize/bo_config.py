"""Settings and run record of latent-space Bayesian optimization (:mod:`molgen.optimize.bo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from molgen.config import ConfigMixin
from molgen.errors import ConfigError

# The bo_* modules are one package split by concern; their _private helpers are shared among them only.
__all__ = ["BOConfig", "BORun"]


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
    design_mutants: int = 0  # oracle calls of the initial design spent on lead mutants (bo._seed_with_mutants)
    decoded: int = 0
    stopped: str = "budget"  # budget | stalled
    space: dict[str, Any] = field(default_factory=dict)
    finetunes: list[dict[str, Any]] = field(default_factory=list)  # per VAE update: step, molecules, batch loss of its first and last steps

