"""Training image models into a run folder.

Glue between :mod:`molgen.image.data`, the models of
:mod:`molgen.models.image` and the two shared loops: single-optimizer models
(VAE, beta-VAE, CVAE, DAE, the reference classifier) go to
:class:`~molgen.train.Trainer`, the adversarial ones (DCGAN, WGAN-GP, cGAN,
SGAN, VAE-GAN) to :class:`~molgen.train.adversarial.AdversarialTrainer`.

A run folder holds ``config.json`` (resolved config, seed, versions, device,
data summary), ``model.safetensors`` (self-describing image checkpoint),
``last.safetensors`` (resumable state), ``metrics.jsonl``/``metrics.csv``,
``loss_curve.png``, ``samples.png`` and ``samples.gif`` (a fixed noise batch
decoded after every epoch).

>>> model, result = train_image_model(ImageTrainingConfig(model="vae", train={"epochs": 1}), "runs/vae")  # doctest: +SKIP

or, like ``molgen image train --config configs/image_train.toml``:

>>> settings = ImageTrainSettings.from_file("configs/image_train.toml")  # doctest: +SKIP
>>> model, result = train_image_from_settings(settings)                  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from molgen.errors import ConfigError, DataError
from molgen.image.train_config import ADVERSARIAL_KINDS, ImageTrainingConfig, ImageTrainSettings, default_train_settings
from molgen.image.data import ImageSet, load_splits
from molgen.models.image import build_model, save_image_model
from molgen.models.image.dae import DenoisingAE
from molgen.models.image.gan import GAN
from molgen.models.image.sgan import SemiSupervisedGAN
from molgen.models.image.vaegan import VAEGAN
from molgen.train import TrainConfig, Trainer, TrainResult
from molgen.train.adversarial import AdversarialTrainer
from molgen.utils.io import RunLock, atomic_write_text
from molgen.utils.runtime import environment_info, resolve_device, seed_everything

__all__ = ["ImageTrainingConfig", "ImageTrainSettings", "train_image_model", "train_image_from_settings", "default_train_settings", "labelled_subset", "ImageTask", "AdversarialImageTask", "to_tensors"]

def to_tensors(data: ImageSet, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels in [0, 1] and labels as tensors on ``device``."""
    return torch.from_numpy(data.floats()).to(device), torch.from_numpy(data.labels.astype(np.int64)).to(device)


def labelled_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of ``n`` images balanced over classes (the "100 labels" protocol of Salimans et al.)."""
    classes = np.unique(labels[labels >= 0])
    if len(classes) < 2:
        raise DataError("semi-supervised training needs labelled images of at least 2 classes")
    per_class, extra = divmod(n, len(classes))
    rng = np.random.default_rng(seed)
    picks = []
    for i, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        take = per_class + (1 if i < extra else 0)
        if take > len(members):
            raise DataError(f"class {c} has only {len(members)} images; ask for fewer labelled images")
        picks.append(members[:take])
    return np.sort(np.concatenate(picks))


class _Batches:
    """Index batches over tensors held in memory; order depends only on (seed, epoch)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, batch_size: int, seed: int):
        self.x, self.y, self.x_val, self.y_val = x, y, x_val, y_val
        self.batch_size = batch_size
        self.seed = seed

    def train_batches(self, epoch: int) -> list[tuple[str, torch.Tensor]]:
        order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch))
        # A last batch of one image would break batch norm; drop a ragged tail smaller than 2.
        chunks = [c for c in order.split(self.batch_size) if len(c) > 1]
        return [("train", c) for c in chunks]

    def val_batches(self) -> list[tuple[str, torch.Tensor]]:
        return [("val", c) for c in torch.arange(len(self.x_val)).split(self.batch_size) if len(c) > 1]

    def get(self, batch: tuple[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        split, idx = batch
        x, y = (self.x, self.y) if split == "train" else (self.x_val, self.y_val)
        return x[idx.to(x.device)], y[idx.to(y.device)]

    def describe_batch(self, batch: tuple[str, torch.Tensor]) -> str:
        split, idx = batch
        return f"{len(idx)} {split} images, first indices {idx[:5].tolist()}"


class ImageTask(_Batches):
    """Single-optimizer image models: VAE family, DAE, reference classifier."""

    def __init__(self, model: nn.Module, batches: dict[str, Any], generator: torch.Generator, meta: dict[str, Any]):
        super().__init__(**batches)
        self.model = model
        self.generator = generator
        self.meta = meta

    def step(self, batch: tuple[str, torch.Tensor], global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = self.get(batch)
        if isinstance(self.model, DenoisingAE):
            out = self.model(x, generator=self.generator)
            return out.loss, {}
        if self.model.kind == "image_classifier":
            out = self.model(x, y)
            return out.loss, {"accuracy": out.accuracy.item()}
        out = self.model(x, y if self.model.conditional else None, generator=self.generator)
        return out.loss, {"recon": out.recon.item(), "kl": out.kl.item()}

    def export(self, path: Path, extra_meta: dict[str, Any]) -> None:
        save_image_model(self.model, path, {**self.meta, **extra_meta})


class AdversarialImageTask(ImageTask):
    """GAN, WGAN-GP, cGAN, SGAN (alternating phases) and VAE-GAN (one coupled phase)."""

    keep_last = True

    def __init__(self, *args: Any, labelled: tuple[torch.Tensor, torch.Tensor] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.labelled = labelled

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        return self.model.param_groups()

    def phases(self, global_step: int) -> list[str]:
        if isinstance(self.model, VAEGAN):
            return ["coupled"]
        if isinstance(self.model, GAN) and (global_step + 1) % self.model.config.critic_steps:
            return ["discriminator"]
        return ["discriminator", "generator"]

    def phase_step(self, batch: tuple[str, torch.Tensor], phase: str, global_step: int):
        x, y = self.get(batch)
        m, g = self.model, self.generator
        if isinstance(m, VAEGAN):
            return m.losses(x, generator=g)
        if isinstance(m, SemiSupervisedGAN):
            if phase == "generator":
                return m.generator_loss(x, generator=g)
            x_lab, y_lab = self.labelled
            pick = torch.randint(len(x_lab), (min(len(x_lab), len(x)),), generator=g).to(x_lab.device)
            return m.discriminator_loss(x, x_lab[pick], y_lab[pick], generator=g)
        if phase == "generator":
            return m.generator_loss(len(x), generator=g)
        return m.discriminator_loss(x, y if m.conditional else None, generator=g)

    def val_batches(self) -> list[tuple[str, torch.Tensor]]:
        return []  # adversarial losses say little about quality; the evaluation command measures it

    def step(self, batch: tuple[str, torch.Tensor], global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.phase_step(batch, self.phases(global_step)[0], global_step)
        return sum(out.losses.values()), out.logs


def _prepare_data(cfg: ImageTrainingConfig, seed: int):
    """Source splits, then this run's training and validation images as index arrays into ``splits.train``."""
    splits = load_splits(cfg.data)
    index = np.arange(len(splits.train))
    if cfg.exclude_classes:
        index = index[~np.isin(splits.train.labels, cfg.exclude_classes)]
        if not len(index):
            raise DataError(f"excluding classes {cfg.exclude_classes} leaves no training images")
    rng = np.random.default_rng(seed)
    if cfg.limit:
        # Random, not the first N: data files are often sorted by class.
        index = np.sort(rng.permutation(index)[: cfg.limit])
    order = rng.permutation(len(index))
    n_val = int(round(len(index) * cfg.val_fraction)) if len(index) > 20 else 0
    return splits, np.sort(index[order[n_val:]]), np.sort(index[order[:n_val]])


def _frame_callback(model: nn.Module, out: Path, num_classes: int, seed: int):
    """Decode one fixed noise batch after each epoch (frames of ``samples.gif``)."""
    from molgen.image.plots import image_grid

    if not hasattr(model, "sample"):
        return None
    n = 8 * max(1, min(num_classes, 8)) if num_classes else 64
    labels = torch.arange(n) % num_classes if num_classes else None

    def callback(record: dict[str, float], path: Path | None = None) -> None:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        images = model.sample(n, None if labels is None else labels.to(device), generator=torch.Generator().manual_seed(seed))
        model.train(was_training)
        image_grid(images.cpu(), path or out / "frames" / f"epoch_{int(record['epoch']):04d}.png", per_row=8)

    return callback


def _checkpoint_meta(config: ImageTrainingConfig, splits, train: ImageSet, val: ImageSet) -> dict[str, Any]:
    """What an image checkpoint records about its data (evaluation and the CLI read it back)."""
    return {
        "model_name": config.model,
        "data": {
            "source": str(config.data),
            "image_shape": list(train.shape),
            "class_names": splits.train.class_names,
            "n_train": len(train),
            "n_val": len(val),
            "exclude_classes": list(config.exclude_classes),
        },
        "train_config": config.to_dict(),
    }


def _make_trainer(model: nn.Module, batches: dict[str, Any], meta: dict[str, Any], labelled, tcfg: TrainConfig,
                  out: Path, dev: torch.device, generator: torch.Generator, show_progress: bool,
                  monitor: Callable[[nn.Module, dict[str, float]], None] | None = None) -> Trainer:
    """The single-optimizer Trainer or the AdversarialTrainer, by the model's kind."""
    draw = _frame_callback(model, out, model.config.num_classes if getattr(model, "conditional", False) else 0, tcfg.seed)
    frames = draw
    if monitor is not None:
        def frames(record: dict[str, float]) -> None:
            if draw is not None:
                draw(record)
            monitor(model, record)
    if model.kind in ADVERSARIAL_KINDS:
        task = AdversarialImageTask(model, batches, generator, meta, labelled=labelled)
        betas = (0.0, 0.9) if getattr(model.config, "loss", "") == "wgan-gp" else (0.5, 0.999)
        return AdversarialTrainer(task, tcfg, out, dev, generator, show_progress, frames, betas=betas)
    return Trainer(ImageTask(model, batches, generator, meta), tcfg, out, dev, generator, show_progress, frames)


def _final_pictures(trainer: Trainer, out: Path, dev: torch.device, seed: int) -> nn.Module:
    """Loss curves, the GIF of the per-epoch frames, and samples.png from the exported model (returned)."""
    from molgen.image.plots import frames_to_gif, plot_losses
    from molgen.models.image import load_image_model

    plot_losses(trainer.history, out / "loss_curve.png")
    if (out / "frames").exists():
        frames_to_gif(sorted((out / "frames").glob("epoch_*.png")), out / "samples.gif")
    best, _ = load_image_model(out / "model.safetensors")
    best.to(dev)
    final = _frame_callback(best, out, best.config.num_classes if getattr(best, "conditional", False) else 0, seed)
    if final is not None:
        final({"epoch": 0}, out / "samples.png")
    return best


def train_image_model(
    config: ImageTrainingConfig,
    out_dir: str | Path,
    device: str = "auto",
    resume: bool = False,
    show_progress: bool = True,
    monitor: Callable[[nn.Module, dict[str, float]], None] | None = None,
    record: dict[str, Any] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """Train ``config.model`` on ``config.data`` into ``out_dir``; returns the exported model and why training stopped.

    ``monitor(model, record)`` runs after every epoch (e.g. to score samples as training goes); it
    must leave the model's mode and the global random state as it found them. ``record``'s tables
    go into ``config.json`` beside the config.
    """
    out = Path(out_dir)
    with RunLock(out):
        if resume:
            if not (out / "config.json").exists():
                raise DataError(f"nothing to resume in {out} (no config.json); start without --resume")
            config = ImageTrainingConfig.from_dict(json.loads((out / "config.json").read_text())["config"])
        tcfg = config.train.trainer_config()
        dev = resolve_device(device)
        generator = seed_everything(tcfg.seed)
        splits, train_index, val_index = _prepare_data(config, tcfg.seed)
        train, val = splits.train.subset(train_index), splits.train.subset(val_index)
        torch.manual_seed(tcfg.seed)
        model = build_model(config.model, train.shape, splits.train.num_classes, **config.model_options.overrides()).to(dev)
        x, y = to_tensors(train, dev)
        x_val, y_val = to_tensors(val, dev)
        batches = dict(x=x, y=y, x_val=x_val, y_val=y_val, batch_size=tcfg.batch_size, seed=tcfg.seed)
        meta = _checkpoint_meta(config, splits, train, val)
        labelled = None
        if isinstance(model, SemiSupervisedGAN):
            idx = labelled_subset(train.labels, config.labelled, tcfg.seed)
            labelled = (x[torch.from_numpy(idx).to(dev)], y[torch.from_numpy(idx).to(dev)])
            # Stored so that evaluation trains its "labels alone" baseline on exactly these images.
            meta["data"]["labelled_index"] = train_index[idx].tolist()
        if not resume:
            run_info = {"config": config.to_dict(), "model_config": model.config.to_dict(), "seed": tcfg.seed,
                        "environment": environment_info(dev), "data": meta["data"],
                        "parameters": sum(p.numel() for p in model.parameters()), **(record or {})}
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "config.json", json.dumps(run_info, indent=2))
        trainer = _make_trainer(model, batches, meta, labelled, tcfg, out, dev, generator, show_progress, monitor)
        result = trainer.fit(resume=resume)
        return _final_pictures(trainer, out, dev, tcfg.seed), result


def train_image_from_settings(settings: ImageTrainSettings) -> tuple[nn.Module, TrainResult]:
    """Train the run ``settings`` describe into ``settings.run.out`` (what ``molgen image train`` does)."""
    from molgen.utils.threads import set_torch_threads

    run = settings.run
    if run.out is None:
        raise ConfigError("no run folder: give --out DIR (or run.out in the config file)")
    set_torch_threads(run.threads)
    return train_image_model(
        settings.training_config(), run.out, device=run.device, resume=run.resume, show_progress=not run.quiet, record=settings.record()
    )
