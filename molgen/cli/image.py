"""``molgen image ...``: train, sample, interpolate, denoise, anomaly, evaluate.

Argument parsing and wiring only; the work is in :mod:`molgen.image`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli.options import ConfigFile, SeedOpt, ThreadsOpt, settings_from
from molgen.console import err, warn
from molgen.errors import ConfigError
from molgen.utils.threads import set_torch_threads

__all__ = ["image_app"]

image_app = typer.Typer(no_args_is_help=True, help="Image models on MNIST-style data: VAEs, DAE, GANs, SGAN, VAE-GAN.", rich_markup_mode=None)

MODEL_OPT = "run folder or image checkpoint written by molgen image train"
DATA_OPT = "mnist5k (embedded 5,000 digits), an IDX images file, a folder of MNIST IDX files, or a folder of images"


def _load(model: Path, expect: tuple[str, ...] | None = None):
    from molgen.models.image import load_image_model

    return load_image_model(model, expect)


def _test_images(meta: dict, data: Optional[str]):
    from molgen.image.data import load_splits

    return load_splits(data or meta.get("data", {}).get("source", "mnist5k")).test


#: Where each ``image train`` flag goes in :class:`~molgen.image.train_config.ImageTrainSettings`.
IMAGE_TRAIN_FLAGS = {
    "model": "model", "data": "data", "labelled": "labelled", "exclude_class": "exclude_classes", "limit": "limit",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr", "seed": "train.seed", "max_minutes": "train.max_minutes",
    "latent_dim": "model_options.latent_dim", "hidden": "model_options.hidden", "beta": "model_options.beta", "recon": "model_options.recon",
    "noise": "model_options.noise", "noise_kind": "model_options.noise_kind", "out_dir": "run.out", "device": "run.device",
    "resume": "run.resume", "threads": "run.threads", "quiet": "run.quiet",
}  # fmt: skip


@image_app.command()
def train(
    ctx: typer.Context,
    config: ConfigFile = None,
    model: str = typer.Option("vae", "--model", help="vae, beta-vae, cvae, dae, dcgan, wgan-gp, cgan, sgan or vaegan"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder to create (or continue with --resume); required unless the config file gives run.out"),
    data: str = typer.Option("mnist5k", help=DATA_OPT),
    epochs: int = typer.Option(20),
    batch_size: int = typer.Option(64),
    lr: Optional[float] = typer.Option(None, help="learning rate (default: 1e-3 for autoencoders, 2e-4 for GANs, 3e-3 for sgan)"),
    latent_dim: Optional[int] = typer.Option(None, help="latent size (default per model; the code size of dae)"),
    hidden: Optional[int] = typer.Option(None, help="channels of the first conv layer (default 32)"),
    beta: Optional[float] = typer.Option(None, help="VAE KL weight (beta-vae default 4)"),
    recon: Optional[str] = typer.Option(None, help="VAE reconstruction loss: bce or mse"),
    noise: Optional[float] = typer.Option(None, help="DAE corruption level (default 0.5)"),
    noise_kind: Optional[str] = typer.Option(None, help="DAE corruption: gaussian (std) or mask (fraction of pixels zeroed)"),
    labelled: int = typer.Option(100, help="sgan: labelled training images, balanced over classes"),
    exclude_class: list[int] = typer.Option([], help="leave this class out of training (anomaly detection); repeatable"),
    limit: int = typer.Option(0, help="use only N training images, drawn at random (0: all)"),
    max_minutes: float = typer.Option(0.0, help="stop after this many minutes (0: no limit)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Train an image model; the run folder gets the model, logs, loss curves, samples.png and samples.gif.

    --config FILE reads the settings from a TOML file (configs/image_train.toml) or a run's config.json.
    """
    from molgen.image.training import ImageTrainSettings, train_image_from_settings

    settings = settings_from(ctx, ImageTrainSettings, config, IMAGE_TRAIN_FLAGS)
    _, result = train_image_from_settings(settings)
    err.print(
        f"trained {settings.model}: {result.epochs_run} epoch(s), {result.steps} steps in {result.seconds / 60:.1f} min "
        f"(stopped: {result.stopped_because}); model: {settings.run.out / 'model.safetensors'}"
    )


@image_app.command()
def sample(
    model: Path = typer.Option(..., "--model", help=MODEL_OPT),
    n: int = typer.Option(64, "-n", help="number of images"),
    label: Optional[int] = typer.Option(None, help="class to generate (conditional models; default: cycle through classes)"),
    output: Path = typer.Option(Path("samples.png"), "-o", "--output", help=".png grid, or .npz with uint8 images"),
    per_row: int = typer.Option(8),
    seed: SeedOpt = 0,
) -> None:
    """Generate images from a trained model."""
    import numpy as np

    from molgen.image.pipelines import sample_images
    from molgen.image.plots import image_grid
    from molgen.utils.io import atomic_output

    net, _ = _load(model)
    images = sample_images(net, n, label=label, seed=seed)
    if output.suffix == ".npz":
        with atomic_output(output, "wb") as fh:
            np.savez_compressed(fh, images=(images.numpy() * 255).round().astype(np.uint8))
    else:
        image_grid(images, output, per_row=per_row)
    err.print(f"wrote {n} images to {output}")


@image_app.command()
def interpolate(
    model: Path = typer.Option(..., "--model", help=MODEL_OPT),
    from_index: int = typer.Option(0, help="test image to start from"),
    to_index: int = typer.Option(1, help="test image to end at"),
    steps: int = typer.Option(10),
    spherical: bool = typer.Option(False, help="slerp instead of a straight line"),
    data: Optional[str] = typer.Option(None, help="images to index (default: the model's training source, test split)"),
    output: Path = typer.Option(Path("interpolation.png"), "-o", "--output"),
    seed: int = typer.Option(0, help="GANs: seed of the two noise vectors"),
) -> None:
    """Walk the latent space between two test images (GANs: between two noise draws)."""
    import torch

    from molgen.image.pipelines import interpolate as run
    from molgen.image.plots import image_rows
    from molgen.image.training import to_tensors

    net, meta = _load(model)
    x, y = to_tensors(_test_images(meta, data))
    for i in (from_index, to_index):
        if not 0 <= i < len(x):
            raise ConfigError(f"image index {i} is out of range; the test split has {len(x)} images")
    y_from = y[from_index] if getattr(net, "conditional", False) else None
    path = run(net, x[from_index], x[to_index], steps, spherical, y_from=y_from, seed=seed)
    if hasattr(net, "encode"):
        path = torch.cat([x[from_index][None], path, x[to_index][None]])
    image_rows([path], output, scale=3)
    labels = f" (classes {int(y[from_index])} -> {int(y[to_index])})" if y[from_index] >= 0 else ""
    err.print(f"wrote {steps}-step interpolation{labels} to {output}")


@image_app.command()
def denoise(
    model: Path = typer.Option(..., "--model", help=MODEL_OPT),
    noise: float = typer.Option(0.5, help="Gaussian noise std (or masked fraction with --kind mask)"),
    kind: str = typer.Option("gaussian", help="gaussian or mask"),
    n: int = typer.Option(10, "-n", help="test images to show"),
    data: Optional[str] = typer.Option(None, help="images (default: the model's training source, test split)"),
    output: Path = typer.Option(Path("denoised.png"), "-o", "--output"),
    seed: SeedOpt = 0,
) -> None:
    """Rows: original / noisy / denoised; prints PSNR of the noisy and denoised images over the whole test split."""
    from molgen.image.evaluate import psnr
    from molgen.image.pipelines import denoise as run
    from molgen.image.plots import image_rows
    from molgen.image.training import to_tensors

    net, meta = _load(model)
    x, y = to_tensors(_test_images(meta, data))
    noisy, clean = run(net, x, noise, kind, seed, y=y if getattr(net, "conditional", False) else None)
    image_rows([x[:n], noisy[:n], clean[:n]], output)
    a, b = psnr(noisy, x), psnr(clean, x)
    err.print(f"PSNR noisy {a:.2f} dB, denoised {b:.2f} dB (gain {b - a:+.2f} dB) on {len(x)} test images; picture: {output}")


@image_app.command()
def anomaly(
    model: Path = typer.Option(..., "--model", help=MODEL_OPT),
    holdout_class: list[int] = typer.Option(..., help="class(es) treated as anomalies; the model should be trained with --exclude-class"),
    data: Optional[str] = typer.Option(None, help="images (default: the model's training source, test split)"),
    output: Path = typer.Option(Path("anomaly_roc.png"), "-o", "--output", help="ROC curve PNG"),
) -> None:
    """Reconstruction-error anomaly detection: AUROC of held-out classes against the rest of the test split."""
    import numpy as np

    from molgen.image.evaluate import auroc
    from molgen.image.pipelines import anomaly_scores
    from molgen.image.plots import plot_roc
    from molgen.image.training import to_tensors

    net, meta = _load(model)
    test = _test_images(meta, data)
    if not test.labelled:
        raise ConfigError("anomaly detection needs labelled test images to know which are held out")
    trained_without = set(meta.get("data", {}).get("exclude_classes") or [])
    if not set(holdout_class) <= trained_without:
        warn(f"the model saw class(es) {sorted(set(holdout_class) - trained_without)} in training; "
             "train with --exclude-class for a real anomaly test")
    x, y = to_tensors(test)
    scores = anomaly_scores(net, x, y if getattr(net, "conditional", False) else None).numpy()
    value, fpr, tpr = auroc(scores, np.isin(test.labels, holdout_class))
    plot_roc(fpr, tpr, value, output, title=f"held-out class(es) {', '.join(map(str, holdout_class))}")
    print(json.dumps({"anomaly_auroc": value, "holdout_classes": list(holdout_class), "n_test": len(x)}))
    err.print(f"AUROC {value:.3f}; ROC curve: {output}")


@image_app.command()
def evaluate(
    model: Path = typer.Option(..., "--model", help=MODEL_OPT),
    output: Path = typer.Option(Path("report"), "-o", "--output", help="folder for metrics.json, report.md and pictures"),
    n_samples: int = typer.Option(2000, help="generated images for the distribution metrics"),
    iw_samples: int = typer.Option(50, help="importance samples per image for the VAE NLL bound"),
    reference_steps: int = typer.Option(600, help="training steps of the reference classifier (cached per data set)"),
    baseline_steps: int = typer.Option(400, help="training steps of the labelled-only and augmented classifiers"),
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
) -> None:
    """All metrics that apply to the model (JSON + Markdown) and pictures: samples, reconstructions, latent PCA."""
    from molgen.image.data import load_splits
    from molgen.image.evaluate import EvalOptions, evaluate_model, write_report

    set_torch_threads(threads)
    net, meta = _load(model)
    splits = load_splits(meta.get("data", {}).get("source", "mnist5k"))
    result = evaluate_model(net, meta, splits, EvalOptions(
        n_samples=n_samples, iw_samples=iw_samples, seed=seed, reference_steps=reference_steps, classifier_steps=baseline_steps
    ))
    json_path, md_path = write_report(result, output)
    _report_pictures(net, splits, output, seed)
    print(json.dumps(result, indent=2))
    err.print(f"report: {md_path}")


def _report_pictures(net, splits, output: Path, seed: int) -> None:
    from molgen.image.pipelines import encode_images, reconstruct, sample_images
    from molgen.image.plots import image_grid, image_rows, plot_latent_pca
    from molgen.image.training import to_tensors

    x, y = to_tensors(splits.test)
    cond = y if getattr(net, "conditional", False) else None
    if hasattr(net, "sample"):
        image_grid(sample_images(net, 64, seed=seed), output / "samples.png")
    if hasattr(net, "encode"):
        image_rows([x[:12], reconstruct(net, x[:12], None if cond is None else cond[:12])], output / "reconstructions.png")
        if splits.test.labelled:
            plot_latent_pca(encode_images(net, x, cond).numpy(), y.numpy(), output / "latent_pca.png", splits.test.class_names)


app.add_typer(image_app, name="image")
