"""Image models: VAE / beta-VAE / CVAE, denoising AE, DCGAN, WGAN-GP, cGAN, semi-supervised GAN, VAE-GAN.

Each family lives in its own module with its config and paper citation. This
package maps the user-facing model names to a family and its preset, and
saves/loads image checkpoints (``meta["kind"]`` names the family, the config
travels in the metadata, so a checkpoint rebuilds itself with nothing else).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from molgen.errors import CheckpointError, ConfigError
from molgen.models.image.classifier import ClassifierConfig, ImageClassifier
from molgen.models.image.dae import DAEConfig, DenoisingAE
from molgen.models.image.gan import GAN, GANConfig
from molgen.models.image.sgan import SemiSupervisedGAN, SGANConfig
from molgen.models.image.vae import ConvVAE, VAEConfig
from molgen.models.image.vaegan import VAEGAN, VAEGANConfig
from molgen.utils.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "MODEL_NAMES",
    "KINDS",
    "build_model",
    "save_image_model",
    "load_image_model",
    "ConvVAE",
    "VAEConfig",
    "DenoisingAE",
    "DAEConfig",
    "GAN",
    "GANConfig",
    "SemiSupervisedGAN",
    "SGANConfig",
    "VAEGAN",
    "VAEGANConfig",
    "ImageClassifier",
    "ClassifierConfig",
]

# kind -> (model class, config class)
KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "image_vae": (ConvVAE, VAEConfig),
    "image_dae": (DenoisingAE, DAEConfig),
    "image_gan": (GAN, GANConfig),
    "image_sgan": (SemiSupervisedGAN, SGANConfig),
    "image_vaegan": (VAEGAN, VAEGANConfig),
    "image_classifier": (ImageClassifier, ClassifierConfig),
}

# user-facing name -> (kind, preset overrides); "conditional" means "num_classes from the data".
MODEL_NAMES: dict[str, tuple[str, dict[str, Any]]] = {
    "vae": ("image_vae", {}),
    "beta-vae": ("image_vae", {"beta": 4.0}),
    # A small latent leaves the class to the label: with 16 dimensions the code keeps it and the
    # decoder learns to ignore its label input (35% conditional accuracy after 4 epochs, 93% with 4 dims).
    "cvae": ("image_vae", {"conditional": True, "latent_dim": 4}),
    "dae": ("image_dae", {}),
    # On the embedded digits, minibatch std alone left 3 classes under half their share after 35 epochs
    # (Frechet 213); with packs of 2 (PacGAN) none after 40 (Frechet 89; docs/image_benchmarks.md).
    "dcgan": ("image_gan", {"loss": "ns", "minibatch_std": True, "pack": 2}),
    "wgan-gp": ("image_gan", {"loss": "wgan-gp", "critic_steps": 5}),
    "cgan": ("image_gan", {"loss": "ns", "conditional": True}),
    # Salimans et al.'s MNIST discriminator and loss weight: after 30 epochs on the embedded digits, 89.2%
    # test accuracy from 100 labels against 70% with the conv discriminator; translating the labelled
    # images by up to 2 pixels: 90.4%, and 5s no longer under half their share of the samples
    # (docs/image_benchmarks.md).
    "sgan": ("image_sgan", {"conditional": True, "discriminator": "mlp", "unsupervised_weight": 0.5, "label_shift": 2}),
    "vaegan": ("image_vaegan", {}),
}


def build_model(
    name: str, image_shape: tuple[int, int, int], num_classes: int = 0, **overrides: Any
) -> nn.Module:
    """Build the model ``name`` (see :data:`MODEL_NAMES`) for images of ``image_shape``.

    >>> build_model("cvae", (1, 28, 28), num_classes=10).config.num_classes
    10
    """
    if name not in MODEL_NAMES:
        raise ConfigError(f"unknown image model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    kind, preset = MODEL_NAMES[name]
    params = dict(preset)
    if params.pop("conditional", False):
        if num_classes < 2:
            raise ConfigError(f"{name} needs labelled data with at least 2 classes; this data has {num_classes}")
        params["num_classes"] = num_classes
    params.update({k: v for k, v in overrides.items() if v is not None})
    model_cls, config_cls = KINDS[kind]
    return model_cls(config_cls.from_dict({"image_shape": tuple(image_shape), **params}))


def save_image_model(model: nn.Module, path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write weights, ``kind`` and config (plus ``meta``) as a molgen checkpoint."""
    full = dict(meta or {})
    full.update(kind=model.kind, model_config=model.config.to_dict())
    return save_checkpoint(path, model.state_dict(), full)


def load_image_model(path: str | Path, expect: tuple[str, ...] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load an image checkpoint (file or run folder) -> ``(model in eval mode, meta)``.

    Raises :class:`CheckpointError` for molecular checkpoints or kinds outside ``expect``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    tensors, meta = load_checkpoint(path)
    kind = meta.get("kind")
    if kind not in KINDS:
        hint = "a molecular model; use the molgen sample/encode commands" if kind == "seq_vae" else f"kind {kind!r}"
        raise CheckpointError(f"{path} is not an image model ({hint}); pass a checkpoint written by molgen image train")
    if expect and kind not in expect:
        raise CheckpointError(f"{path} is a {kind} checkpoint but this needs one of {', '.join(expect)}")
    model_cls, config_cls = KINDS[kind]
    try:
        model = model_cls(config_cls.from_dict(meta["model_config"]))
        model.load_state_dict(tensors)
    except (KeyError, ConfigError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: weights do not match its config ({str(exc).splitlines()[0]}); it is corrupted") from None
    return model.eval(), meta
