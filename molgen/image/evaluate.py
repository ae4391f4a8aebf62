"""Image metrics and the ``molgen image evaluate`` report.

All metrics use the source's fixed test split (see
:func:`molgen.image.data.load_splits`):

- **Frechet classifier distance** — the Frechet distance between Gaussians
  fitted to penultimate-layer features of a small reference CNN
  (:mod:`molgen.models.image.classifier`) for generated and test images. Same
  formula as FID (Heusel et al. 2017), different network: comparable only
  between models scored with the same reference classifier. The distance from
  the training images to the test images is reported as its floor.
- **Conditional accuracy** — the fraction of class-conditional samples that
  the reference classifier assigns to the requested class.
- **Class coverage** — share of classes that receive at least half their fair
  share of unconditional samples (1.0: no mode dropped), plus the normalised
  entropy of the predicted class histogram.
- **ELBO / importance-weighted NLL** (VAEs, Burda et al. 2016), nats/image.
- **Reconstruction MSE**, **PSNR** of denoising (noisy and denoised vs clean,
  and the gain in dB), **inpainting MSE** on the masked (bottom-half) pixels.
- **Semi-supervised accuracy** — SGAN test accuracy beside the same CNN
  architecture trained on the same labelled images alone.
- **Anomaly AUROC** — reconstruction error separating the classes left out
  of training from the rest.
- **Augmentation gain** — test accuracy of a classifier trained on the
  labelled images plus class-conditional samples, minus that on the labelled
  images alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from molgen.errors import ConfigError
from molgen.image.data import ImageSet, ImageSplits, load_splits
from molgen.image.pipelines import (
    anomaly_scores,
    batched,
    denoise,
    inpaint,
    reconstruct,
    sample_images,
)
from molgen.image.training import labelled_subset, to_tensors
from molgen.models.image import load_image_model, save_image_model
from molgen.models.image.classifier import ClassifierConfig, ImageClassifier
from molgen.models.image.dae import DenoisingAE
from molgen.models.image.sgan import SemiSupervisedGAN
from molgen.models.image.vae import ConvVAE
from molgen.train import TrainConfig, Trainer
from molgen.utils.io import atomic_write_text

__all__ = [
    "frechet_distance",
    "classifier_features",
    "psnr",
    "auroc",
    "train_classifier",
    "reference_classifier",
    "evaluate_model",
    "write_report",
    "EvalOptions",
]


@dataclass
class EvalOptions:
    n_samples: int = 2000
    iw_samples: int = 50
    noise: float = 0.5
    labelled: int = 100
    augment_per_class: int = 100
    classifier_steps: int = 400  # the labelled-only and augmented baselines
    reference_steps: int = 600  # the reference classifier (cached by data and this number)
    seed: int = 0


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b`` ``[N, D]``."""
    from scipy import linalg

    if len(a) < 2 or len(b) < 2:
        raise ConfigError("the Frechet distance needs at least 2 samples on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        # Near-singular products: regularise as the FID reference code does.
        eps = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (mean squared error over all pixels)."""
    mse = float((x - reference).pow(2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def auroc(scores: np.ndarray, positive: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Area under the ROC curve of ``scores`` (higher = more anomalous) and the curve itself."""
    from sklearn.metrics import roc_auc_score, roc_curve

    if positive.all() or not positive.any():
        raise ConfigError("AUROC needs both normal and anomalous test images")
    fpr, tpr, _ = roc_curve(positive, scores)
    return float(roc_auc_score(positive, scores)), fpr, tpr


class _ClassifierTask:
    """Random batches with replacement: a fixed number of steps however small the labelled set."""

    def __init__(self, model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, steps: int, batch_size: int, seed: int):
        self.model, self.x, self.y = model, x, y
        self.steps, self.batch_size, self.seed = steps, batch_size, seed

    def train_batches(self, epoch: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1009 + epoch)
        return list(torch.randint(len(self.x), (self.steps, min(self.batch_size, len(self.x))), generator=g))

    def val_batches(self) -> list[torch.Tensor]:
        return []

    def step(self, batch: torch.Tensor, global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.model(self.x[batch], self.y[batch])
        return out.loss, {"accuracy": out.accuracy.item()}

    def describe_batch(self, batch: torch.Tensor) -> str:
        return f"{len(batch)} labelled images"

    def export(self, path: Path, extra_meta: dict[str, Any]) -> None:
        save_image_model(self.model, path, extra_meta)


def train_classifier(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, steps: int = 400, seed: int = 0,
    show_progress: bool = False, batch_size: int = 64,
) -> ImageClassifier:
    """Train the reference CNN architecture on ``(x, y)`` for a fixed number of steps (shared Trainer)."""
    torch.manual_seed(seed)
    model = ImageClassifier(ClassifierConfig(image_shape=tuple(x.shape[1:]), num_classes=num_classes))
    task = _ClassifierTask(model, x, y, steps, batch_size, seed)
    # fp32 whatever the CPU: the reference and the baselines must not depend on the machine's bf16 support.
    config = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-3, patience=0, checkpoint_every=10**9, seed=seed,
                         precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(task, config, Path(tmp) / "classifier", generator=torch.Generator().manual_seed(seed),
                show_progress=show_progress).fit()
    return model.eval()


def _data_key(data: ImageSet, steps: int) -> str:
    digest = hashlib.sha256(data.images.tobytes())
    digest.update(data.labels.astype(np.int64).tobytes())
    digest.update(json.dumps([ClassifierConfig(image_shape=data.shape, num_classes=data.num_classes).to_dict(), steps]).encode())
    return digest.hexdigest()[:16]


def reference_classifier(
    splits: ImageSplits, cache_dir: Path | None = None, steps: int = 600, show_progress: bool = False
) -> tuple[ImageClassifier, float]:
    """The reference CNN trained on all training labels (cached by data hash) and its test accuracy."""
    from molgen.metrics.reference import default_cache_dir

    train = splits.train
    if not train.labelled or train.num_classes < 2:
        raise ConfigError("the image metrics need a labelled data set with at least 2 classes")
    path = Path(cache_dir or default_cache_dir() / "image") / f"reference_classifier_{_data_key(train, steps)}.safetensors"
    if path.exists():
        model, _ = load_image_model(path, expect=("image_classifier",))
    else:
        x, y = to_tensors(train)
        model = train_classifier(x, y, train.num_classes, steps=steps, seed=0, show_progress=show_progress, batch_size=128)
        save_image_model(model, path, {"trained_on": train.source, "steps": steps})
    x_test, y_test = to_tensors(splits.test)
    accuracy = float((batched(model.predict, x_test) == y_test).float().mean())
    return model, accuracy


def classifier_features(classifier: ImageClassifier, x: torch.Tensor) -> np.ndarray:
    """The reference classifier's penultimate features of ``x``, float64 ``[N, D]`` (the Frechet distance's space)."""
    with torch.no_grad():
        return batched(classifier.features, x).numpy().astype(np.float64)


def _generative_metrics(model: nn.Module, classifier: ImageClassifier, test_features: np.ndarray, k: int, opt: EvalOptions) -> dict[str, float]:
    out: dict[str, float] = {}
    conditional = bool(getattr(model, "conditional", False))
    samples = sample_images(model, opt.n_samples, seed=opt.seed)
    out["frechet_classifier_distance"] = frechet_distance(classifier_features(classifier, samples), test_features)
    predicted = batched(classifier.predict, samples).numpy()
    if conditional:
        requested = (torch.arange(opt.n_samples) % model.config.num_classes).numpy()
        out["conditional_accuracy"] = float((predicted == requested).mean())
    else:
        counts = np.bincount(predicted, minlength=k) / len(predicted)
        out["class_coverage"] = float((counts >= 0.5 / k).mean())
        nz = counts[counts > 0]
        out["class_entropy"] = float(-(nz * np.log(nz)).sum() / math.log(k))
    return out


def _autoencoder_metrics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, opt: EvalOptions) -> dict[str, float]:
    cond = y if getattr(model, "conditional", False) else None
    recon = reconstruct(model, x, cond)
    noise = model.config.noise if isinstance(model, DenoisingAE) else opt.noise
    noisy, clean = denoise(model, x, noise, seed=opt.seed, y=cond)
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[:, :, x.shape[2] // 2 :, :] = True
    filled = inpaint(model, x, mask, y=cond)
    out = {
        "reconstruction_mse": float((recon - x).pow(2).mean()),
        "denoise_noise": noise,
        "psnr_noisy_db": psnr(noisy, x),
        "psnr_denoised_db": psnr(clean, x),
        "inpainting_mse": float((filled - x)[mask].pow(2).mean()),
    }
    out["psnr_gain_db"] = out["psnr_denoised_db"] - out["psnr_noisy_db"]
    return out


def _vae_metrics(model: ConvVAE, x: torch.Tensor, y: torch.Tensor, opt: EvalOptions) -> dict[str, float]:
    cond = y if model.conditional else None
    g = torch.Generator().manual_seed(opt.seed)
    with torch.no_grad():
        outs = [model(x[i : i + 500], None if cond is None else cond[i : i + 500], generator=g) for i in range(0, len(x), 500)]
        weights = [min(500, len(x) - i) for i in range(0, len(x), 500)]
        recon = sum(o.recon.item() * w for o, w in zip(outs, weights)) / len(x)
        kl = sum(o.kl.item() * w for o, w in zip(outs, weights)) / len(x)
        nll = batched(lambda a, b: model.iw_nll(a, b, samples=opt.iw_samples, generator=g), x, cond)
    metrics = {"test_recon_nats": recon, "test_kl_nats": kl, "test_neg_elbo_nats": recon + kl}
    if model.config.recon == "bce":
        metrics[f"test_iw_nll_nats_k{opt.iw_samples}"] = float(nll.mean())
    return metrics


def _labelled_baselines(
    model: nn.Module, meta: dict[str, Any], splits: ImageSplits, opt: EvalOptions
) -> dict[str, float]:
    """SGAN accuracy vs labels alone, and augmentation gain for conditional generators."""
    out: dict[str, float] = {}
    x_train, y_train = to_tensors(splits.train)
    x_test, y_test = to_tensors(splits.test)
    k = splits.train.num_classes
    smallest = int(np.bincount(splits.train.labels).min())
    n_labelled = min(opt.labelled, smallest * k)
    index = meta.get("data", {}).get("labelled_index") or labelled_subset(splits.train.labels, n_labelled, opt.seed).tolist()
    idx = torch.tensor(index)
    x_lab, y_lab = x_train[idx], y_train[idx]
    baseline = train_classifier(x_lab, y_lab, k, steps=opt.classifier_steps, seed=opt.seed)
    out["n_labelled"] = len(idx)
    out["labels_only_test_accuracy"] = float((batched(baseline.predict, x_test) == y_test).float().mean())
    if isinstance(model, SemiSupervisedGAN):
        out["sgan_test_accuracy"] = float((batched(model.predict, x_test) == y_test).float().mean())
    elif getattr(model, "conditional", False):
        labels = torch.arange(opt.augment_per_class * k) % k
        fake = sample_images(model, len(labels), labels=labels, seed=opt.seed + 1)
        augmented = train_classifier(torch.cat([x_lab, fake]), torch.cat([y_lab, labels]), k, steps=opt.classifier_steps, seed=opt.seed)
        acc = float((batched(augmented.predict, x_test) == y_test).float().mean())
        out["augmented_test_accuracy"] = acc
        out["augmentation_gain"] = acc - out["labels_only_test_accuracy"]
    return out


def evaluate_model(
    model: nn.Module, meta: dict[str, Any], splits: ImageSplits | None = None, options: EvalOptions | None = None,
    classifier: ImageClassifier | None = None, cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Every metric that applies to ``model`` (see the module docstring), as a flat dict."""
    opt = options or EvalOptions()
    splits = splits or load_splits(meta.get("data", {}).get("source", "mnist5k"))
    model = model.cpu().eval()
    x_test, y_test = to_tensors(splits.test)
    result: dict[str, Any] = {"model": meta.get("model_name", model.kind), "kind": model.kind, "n_test": len(x_test)}
    labelled = splits.train.labelled and splits.train.num_classes >= 2
    if labelled:
        if classifier is None:
            classifier, accuracy = reference_classifier(splits, cache_dir, steps=opt.reference_steps)
            result["reference_classifier_test_accuracy"] = accuracy
        test_features = classifier_features(classifier, x_test)
        # A random subset: files are often sorted by class, so the first rows would be one class.
        pick = np.random.default_rng(opt.seed).permutation(len(splits.train))[: opt.n_samples]
        train_x = to_tensors(splits.train.subset(np.sort(pick)))[0]
        result["frechet_train_vs_test"] = frechet_distance(classifier_features(classifier, train_x), test_features)
        if hasattr(model, "sample"):
            result.update(_generative_metrics(model, classifier, test_features, splits.train.num_classes, opt))
    if hasattr(model, "encode"):
        result.update(_autoencoder_metrics(model, x_test, y_test, opt))
    if isinstance(model, ConvVAE):
        result.update(_vae_metrics(model, x_test, y_test, opt))
    excluded = meta.get("data", {}).get("exclude_classes") or []
    if excluded and hasattr(model, "encode"):
        scores = anomaly_scores(model, x_test, y_test if getattr(model, "conditional", False) else None).numpy()
        result["anomaly_auroc"] = auroc(scores, np.isin(splits.test.labels, excluded))[0]
    if labelled and (isinstance(model, SemiSupervisedGAN) or getattr(model, "conditional", False)):
        result.update(_labelled_baselines(model, meta, splits, opt))
    return result


def write_report(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """``metrics.json`` and a Markdown table ``report.md`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    lines = [f"# Evaluation of `{result.get('model')}` ({result.get('kind')})", "", "| metric | value |", "|---|---|"]
    for key, value in result.items():
        if key in ("model", "kind"):
            continue
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    lines += ["", "Frechet distances use the reference classifier's features (not Inception): compare them only "
              "between models evaluated on the same data; `frechet_train_vs_test` is the floor set by real images."]
    atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
    return out_dir / "metrics.json", out_dir / "report.md"
