"""Training, evaluating, saving and loading a :class:`~molgen.models.predictor.LatentPredictor`.

Labels come from RDKit (built-in properties of the VAE's training molecules,
free: they are not oracle calls) or from the user (a CSV column of measured
values). The data are encoded to posterior means, split into train and
held-out sets, and every ensemble member is trained with Adam on the
standardised targets, keeping the epoch with the best held-out loss. The
held-out R^2 and Spearman correlation of the ensemble mean are reported per
target; a predictor below ``warn_r2`` is flagged, so nobody optimises against
a useless one without being told.

Example::

    >>> from molgen.vae import MoleculeVAE                       # doctest: +SKIP
    >>> vae = MoleculeVAE.load()                                 # doctest: +SKIP
    >>> trained = train_property_predictor(vae, smiles, ["qed", "logp"])  # doctest: +SKIP
    >>> trained.report.r2                                        # doctest: +SKIP
    {'qed': 0.71, 'logp': 0.86}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from molgen import chem
from molgen.config import ConfigMixin
from molgen.errors import CheckpointError, ConfigError, DataError
from molgen.models.predictor import LatentPredictor, LatentPredictorConfig
from molgen.train import Callback, KeepBest, TrainConfig, fit
from molgen.utils.checkpoint import load_checkpoint, save_checkpoint
from molgen.utils.progress import ProgressHandle, progress_bar

__all__ = [
    "PREDICTOR_KIND",
    "PredictorModelOptions",
    "PredictorReport",
    "PredictorTrainingConfig",
    "TrainedPredictor",
    "fit_predictor",
    "load_predictor",
    "save_predictor",
    "train_label_predictor",
    "train_property_predictor",
]

PREDICTOR_KIND = "latent_predictor"


@dataclass
class PredictorModelOptions(ConfigMixin):
    """Sizes of the ensemble (:class:`~molgen.models.predictor.LatentPredictorConfig`); ``None``: its default."""

    hidden: int | None = None
    layers: int | None = None
    members: int | None = None
    dropout: float | None = None

    def overrides(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class PredictorTrainingConfig(ConfigMixin):
    """How a predictor is fitted: ensemble sizes in ``model``, then the optimisation."""

    _config_label = "predictor training keys"

    model: PredictorModelOptions = field(default_factory=PredictorModelOptions)
    epochs: int = 60
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = 10
    warn_r2: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):  # Python callers and older checkpoints give the sizes as a plain table
            self.model = PredictorModelOptions.from_dict(self.model, "model")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("predictor epochs and batch_size must be >= 1")
        if not 0 < self.val_fraction < 1:
            raise ConfigError("predictor val_fraction must be in (0, 1)")

    def to_dict(self) -> dict[str, Any]:
        return dict(super().to_dict(), model=self.model.overrides())


@dataclass
class PredictorReport:
    """Held-out quality per target (ensemble mean), and sizes."""

    r2: dict[str, float]
    spearman: dict[str, float]
    n_train: int
    n_val: int
    epochs: int
    warn_r2: float = 0.5

    @property
    def weak(self) -> list[str]:
        """Targets whose held-out R^2 is below the warning threshold (or undefined)."""
        return [k for k, v in self.r2.items() if not v >= self.warn_r2]

    def summary(self) -> str:
        parts = [f"{k}: R2 {self.r2[k]:.3f}, Spearman {self.spearman[k]:.3f}" for k in self.r2]
        text = f"held-out ({self.n_val:,} of {self.n_train + self.n_val:,} molecules): " + "; ".join(parts)
        if self.weak:
            text += f". WARNING: {', '.join(self.weak)} below R2 {self.warn_r2:g}; gradients from this predictor are unreliable"
        return text


@dataclass
class TrainedPredictor:
    model: LatentPredictor
    report: PredictorReport
    meta: dict[str, Any] = field(default_factory=dict)


def fit_predictor(
    z: np.ndarray,
    y: np.ndarray,
    names: list[str],
    config: PredictorTrainingConfig | None = None,
    device: str | torch.device = "cpu",
    show_progress: bool = False,
) -> TrainedPredictor:
    """Fit an ensemble on latent vectors ``z [N, D]`` and targets ``y [N, P]`` (rows with NaN are dropped).

    ``show_progress`` prints a progress line per epoch (rate, ETA, validation loss).
    """
    cfg = config or PredictorTrainingConfig()
    z, y = np.asarray(z, dtype=np.float32), np.asarray(y, dtype=np.float32).reshape(len(z), -1)
    keep = np.isfinite(y).all(1) & np.isfinite(z).all(1)
    z, y = z[keep], y[keep]
    if len(z) < 10:
        raise DataError(f"only {len(z)} labelled molecules with finite values; a predictor needs at least 10")
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(z))
    n_val = max(2, int(round(len(z) * cfg.val_fraction)))
    val_idx, train_idx = order[:n_val], order[n_val:]
    torch.manual_seed(cfg.seed)
    model = LatentPredictor(LatentPredictorConfig(latent_dim=z.shape[1], names=list(names), **cfg.model.overrides())).to(device)
    zt, yt = torch.from_numpy(z).to(device), torch.from_numpy(y).to(device)
    model.set_target_scale(yt[train_idx].mean(0), yt[train_idx].std(0))
    with progress_bar(cfg.epochs, "training the predictor", show_progress, "epoch") as bar:
        epochs = _train(model, zt, yt, train_idx, val_idx, cfg, rng, bar)
    report = _evaluate(model, zt[val_idx], y[val_idx], list(names), len(train_idx), epochs, cfg.warn_r2)
    # A weak predictor is reported once, by whoever uses it (report.weak): the CLI, or optimize() as a warning.
    return TrainedPredictor(model, report)


class _PredictorTask:
    """Ensemble batches for :func:`~molgen.train.fit`: each member sees its own shuffle of the training rows."""

    def __init__(self, model: LatentPredictor, z: torch.Tensor, y_std: torch.Tensor, train_idx, val_idx, batch_size: int, rng) -> None:
        self.model, self.z, self.y_std = model, z, y_std
        self.train_idx, self.val_idx = train_idx, val_idx
        self.batch_size, self.rng = batch_size, rng

    def train_batches(self, epoch: int) -> list[torch.Tensor]:
        # Own shuffles per member decorrelate the ensemble further.
        perms = np.stack([self.rng.permutation(self.train_idx) for _ in range(self.model.config.members)])
        starts = range(0, len(self.train_idx), self.batch_size)
        return [torch.from_numpy(perms[:, s : s + self.batch_size]).to(self.z.device) for s in starts]

    def val_batches(self) -> list[None]:
        return [None]  # one batch: every held-out row, scored by the ensemble mean

    def step(self, batch: torch.Tensor | None, global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        if batch is None:
            idx = torch.from_numpy(self.val_idx).to(self.z.device)
            return (self.model(self.z[idx]).mean(0) - self.y_std[idx]).pow(2).mean(), {}
        return (_forward_members(self.model, self.z[batch]) - self.y_std[batch]).pow(2).mean(), {}

    def describe_batch(self, batch: torch.Tensor | None) -> str:
        return "the held-out latents" if batch is None else f"{batch.shape[1]} latent rows per member"


class _EpochBar(Callback):
    """One progress step per epoch, with the held-out loss."""

    def __init__(self, bar: ProgressHandle) -> None:
        self.bar = bar

    def on_epoch_end(self, trainer, record: dict[str, float]) -> None:
        self.bar.advance(1, val_loss=record["val_loss"])


def _train(model: LatentPredictor, z, y, train_idx, val_idx, cfg: PredictorTrainingConfig, rng, bar: ProgressHandle) -> int:
    """Adam on the standardised targets, keeping the epoch with the best held-out loss; returns the epochs run."""
    y_std = (y - model.y_mean) / model.y_std
    task = _PredictorTask(model, z, y_std, train_idx, val_idx, cfg.batch_size, rng)
    # No clipping (0: only measured, for the NaN check), plain AdamW in fp32: the loop this replaced.
    config = TrainConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay, grad_clip=0.0,
        patience=cfg.patience, min_delta=1e-5, precision="fp32", fused=False, seed=cfg.seed,
    )  # fmt: skip
    return fit(task, config, [KeepBest(), _EpochBar(bar)], device=z.device).epochs_run


def _forward_members(model: LatentPredictor, x: torch.Tensor) -> torch.Tensor:
    """Like ``model.forward`` but with a different batch per member (``x [members, b, D]``)."""
    for i, layer in enumerate(model.linears):
        x = layer(x)
        if i < len(model.linears) - 1:
            x = model.drop(model.act(x))
    return x


@torch.no_grad()
def _evaluate(model, z_val, y_val: np.ndarray, names, n_train: int, epochs: int, warn_r2: float) -> PredictorReport:
    pred = model.predict(z_val)[0].cpu().numpy()
    r2, rho = {}, {}
    for j, name in enumerate(names):
        resid = ((y_val[:, j] - pred[:, j]) ** 2).sum()
        total = ((y_val[:, j] - y_val[:, j].mean()) ** 2).sum()
        r2[name] = float(1 - resid / total) if total > 0 else float("nan")
        rho[name] = float(spearmanr(y_val[:, j], pred[:, j]).statistic) if len(y_val) > 2 else float("nan")
    return PredictorReport(r2, rho, n_train, len(z_val), epochs, warn_r2)


# -- from molecules ------------------------------------------------------------


def train_property_predictor(
    vae,
    smiles: list[str],
    properties: list[str],
    config: PredictorTrainingConfig | None = None,
    n_jobs: int | None = None,
    show_progress: bool = False,
) -> TrainedPredictor:
    """Encode ``smiles`` with ``vae`` and fit a predictor of built-in RDKit ``properties``.

    ``show_progress`` prints a progress line (rate, ETA) for each step.
    """
    unknown = [p for p in properties if p not in chem.PROPERTIES]
    if unknown:
        raise ConfigError(f"unknown properties {unknown}; choose from {', '.join(chem.PROPERTIES)}")
    with progress_bar(len(smiles), "encoding", show_progress, "mol") as bar:
        z, kept = vae.encode(smiles, progress=bar)
    with progress_bar(len(kept), "RDKit labels", show_progress, "mol") as bar:
        frame = chem.compute_properties([smiles[i] for i in kept], properties, n_jobs=n_jobs, progress=bar)
    trained = fit_predictor(z, frame[properties].to_numpy(), list(properties), config, device=vae.device, show_progress=show_progress)
    trained.meta = _meta(vae, "rdkit", len(kept))
    return trained


def train_label_predictor(
    vae,
    smiles: list[str],
    labels: np.ndarray,
    names: list[str],
    config: PredictorTrainingConfig | None = None,
    show_progress: bool = False,
) -> TrainedPredictor:
    """Fit a predictor of user-measured ``labels [N, P]`` (e.g. from a CSV) for molecules ``smiles``."""
    labels = np.asarray(labels, dtype=float).reshape(len(smiles), -1)
    with progress_bar(len(smiles), "encoding", show_progress, "mol") as bar:
        z, kept = vae.encode(smiles, progress=bar)
    trained = fit_predictor(z, labels[kept], names, config, device=vae.device, show_progress=show_progress)
    trained.meta = _meta(vae, "labels", len(kept))
    return trained


def _meta(vae, source: str, n: int) -> dict[str, Any]:
    return {"labels": source, "n_molecules": n, "vae": vae.meta.get("path"), "latent_dim": vae.config.latent_dim}


# -- persistence ---------------------------------------------------------------


def save_predictor(path: str | Path, trained: TrainedPredictor) -> Path:
    """Write a predictor as a safe molgen checkpoint (``kind = latent_predictor``)."""
    meta = dict(trained.meta)
    meta.update(kind=PREDICTOR_KIND, model_config=trained.model.config.to_dict(), report=asdict(trained.report))
    return save_checkpoint(path, trained.model.state_dict(), meta)


def load_predictor(path: str | Path, device: str | torch.device = "cpu", latent_dim: int | None = None) -> TrainedPredictor:
    """Load a predictor file (or a folder holding ``predictor.safetensors``); checks the latent size if given."""
    path = Path(path)
    if path.is_dir():
        path = path / "predictor.safetensors"
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != PREDICTOR_KIND:
        raise CheckpointError(f"{path} holds a {meta.get('kind')!r} checkpoint, not a latent predictor")
    try:
        model = LatentPredictor(LatentPredictorConfig.from_dict(meta["model_config"]))
        model.load_state_dict(tensors)
        report = PredictorReport(**meta["report"])
    except (KeyError, TypeError, RuntimeError, ConfigError) as exc:
        raise CheckpointError(f"{path} does not match the LatentPredictor layout ({str(exc).splitlines()[0]})") from None
    if latent_dim is not None and model.config.latent_dim != latent_dim:
        raise CheckpointError(
            f"{path} was trained on {model.config.latent_dim}-d latents but the model has {latent_dim}; "
            "train the predictor with this VAE (molgen predictor train --model ...)"
        )
    meta["path"] = str(path)
    return TrainedPredictor(model.to(device).eval(), report, meta)
