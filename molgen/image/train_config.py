"""Typed settings of an image run: the model family and its options, the optimisation, the data and the run.

``molgen image train --config FILE`` reads :class:`ImageTrainSettings` from a
TOML file (``configs/image_train.toml``) or from a run folder's
``config.json``, which then repeats that run::

    >>> settings = ImageTrainSettings.from_file("configs/image_train.toml")   # doctest: +SKIP
    >>> model, result = train_image_from_settings(settings)                   # doctest: +SKIP

The learning rate, early-stopping patience and gradient clip left unset
take the model's defaults (:func:`default_train_settings`: Radford et al.'s
2e-4 and no early stopping for GANs); the run folder records the values used.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.models.image import MODEL_NAMES
from molgen.train import TrainConfig

__all__ = ["ImageModelOptions", "ImageOptimOptions", "ImageRunOptions", "ImageTrainSettings", "ImageTrainingConfig", "default_train_settings"]

ADVERSARIAL_KINDS = ("image_gan", "image_sgan", "image_vaegan")
ModelName = Literal["vae", "beta-vae", "cvae", "dae", "dcgan", "wgan-gp", "cgan", "sgan", "vaegan"]


def _set_only(table: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if v is not None}


def default_train_settings(model: str) -> dict[str, float]:
    """Learning rate, early-stopping patience and gradient clip that ``molgen image train`` uses for ``model``.

    >>> default_train_settings("dcgan")["lr"], default_train_settings("vae")["lr"]
    (0.0002, 0.001)
    """
    if model not in MODEL_NAMES:
        raise ConfigError(f"unknown image model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
    if model == "sgan":
        # Salimans et al.'s MNIST setting for their weight-normalised discriminator (Adam, beta1 0.5).
        return {"lr": 3e-3, "patience": 0, "grad_clip": 10.0}
    if MODEL_NAMES[model][0] in ADVERSARIAL_KINDS:
        # Radford et al.'s 2e-4; no early stopping: GAN losses do not track sample quality.
        return {"lr": 2e-4, "patience": 0, "grad_clip": 10.0}
    return {"lr": 1e-3, "patience": 5, "grad_clip": 5.0}


@dataclass
class ImageModelOptions(ConfigMixin):
    """Overrides of the model family's config (``molgen.models.image``); ``None``: the family's default.

    Each family takes its own subset; one it does not have is an error naming the family's keys.
    """

    latent_dim: int | None = None
    code_dim: int | None = None  # DAE code size
    hidden: int | None = None  # channels of the first conv layer
    beta: float | None = None  # VAE KL weight
    recon: Literal["bce", "mse"] | None = None
    noise: float | None = None  # DAE corruption level
    noise_kind: Literal["gaussian", "mask"] | None = None
    loss: Literal["ns", "wgan-gp"] | None = None
    gp_weight: float | None = None
    critic_steps: int | None = None
    minibatch_std: bool | None = None
    pack: int | None = None
    discriminator: Literal["conv", "mlp"] | None = None
    widths: list[int] | None = None
    input_noise: float | None = None
    hidden_noise: float | None = None
    dropout: float | None = None
    unsupervised_weight: float | None = None
    label_shift: int | None = None
    gamma: float | None = None
    pixel_weight: float | None = None
    feature_dim: int | None = None

    def overrides(self) -> dict[str, Any]:
        table = _set_only(dataclasses.asdict(self))
        if "widths" in table:
            table["widths"] = tuple(table["widths"])
        return table


@dataclass
class ImageOptimOptions(ConfigMixin):
    """Optimisation (:class:`~molgen.train.TrainConfig`); ``lr``, ``patience`` and ``grad_clip`` default per model."""

    epochs: int = 20
    batch_size: int = 64
    lr: float | None = None
    patience: int | None = None
    grad_clip: float | None = None
    seed: int = 0
    max_minutes: float = 0.0
    # Image models are benchmarked in fp32 (docs/image_benchmarks.md); bf16 stays opt-in until measured for them.
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    max_cpu_minutes: float | None = None
    weight_decay: float | None = None
    lr_decay: float | None = None
    lr_schedule: Literal["constant", "cosine"] | None = None
    checkpoint_every: int | None = None

    def trainer_config(self) -> TrainConfig:
        return TrainConfig(**_set_only(dataclasses.asdict(self)))


@dataclass
class ImageTrainingConfig(ConfigMixin):
    """Everything that defines an image run."""

    model: ModelName = "vae"
    data: str = "mnist5k"  # a built-in set (mnist5k, mnist, fashion-mnist) or an .npz/.npy file
    model_options: ImageModelOptions = field(default_factory=ImageModelOptions)
    train: ImageOptimOptions = field(default_factory=ImageOptimOptions)
    val_fraction: float = 0.05
    labelled: int = 100  # semi-supervised GAN: labelled training images, balanced over classes
    exclude_classes: list[int] = field(default_factory=list)  # left out of training (anomaly detection)
    limit: int = 0  # use only N training images, drawn at random with the seed (0: all)

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ConfigError(f"unknown image model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}")
        if isinstance(self.model_options, dict):
            self.model_options = ImageModelOptions.from_dict(self.model_options, "model_options")
        if isinstance(self.train, dict):
            self.train = ImageOptimOptions.from_dict(self.train, "train")
        if self.model == "dae" and self.model_options.code_dim is None and self.model_options.latent_dim is not None:
            # The denoising autoencoder calls its latent its code.
            self.model_options.code_dim, self.model_options.latent_dim = self.model_options.latent_dim, None
        for name, value in default_train_settings(self.model).items():
            if getattr(self.train, name) is None:
                setattr(self.train, name, value)
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if self.labelled < 0 or self.limit < 0:
            raise ConfigError("labelled and limit must be >= 0")
        self.train.trainer_config()

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["model_options"] = _set_only(out["model_options"])
        out["train"] = _set_only(out["train"])
        return out

    def training_config(self) -> ImageTrainingConfig:
        """Only the fields of :class:`ImageTrainingConfig` (drops the run options of a subclass)."""
        return ImageTrainingConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ImageTrainingConfig)})


@dataclass
class ImageRunOptions(ConfigMixin):
    """How an image run is executed."""

    out: Path | None = None  # run folder to create (or continue with resume); not written to config.json
    resume: bool = False
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int = 0  # CPU threads for torch (0: torch's default)
    quiet: bool = False  # no progress bar


@dataclass
class ImageTrainSettings(ImageTrainingConfig):
    """A whole ``molgen image train`` run: the training config plus how it runs."""

    run: ImageRunOptions = field(default_factory=ImageRunOptions)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.run, dict):
            self.run = ImageRunOptions.from_dict(self.run, "run")

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> ImageTrainSettings:
        """Settings from a TOML table, or from a run folder's ``config.json`` (with overrides written over it)."""
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "model_config" in data:
            record, data = data, dict(data["config"])
            data["run"] = dict(record.get("run") or {})
            for key, value in record.items():
                if key in ("config", "model_config", "seed", "environment", "parameters", "run") or (key == "data" and isinstance(value, dict)):
                    continue  # the record's own keys; "data" there is the data summary unless an override replaced it
                data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        return super().from_dict(data, where)  # type: ignore[return-value]

    def record(self) -> dict[str, Any]:
        return {"run": {k: v for k, v in self.run.to_dict().items() if k not in ("out", "resume", "quiet")}}
