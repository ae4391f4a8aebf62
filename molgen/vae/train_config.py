"""Typed settings of a molecular VAE run: the model, the optimisation, the KL schedule, the data and the run.

:class:`VAETrainingConfig` is what defines the trained model besides its
data; a run folder's ``config.json`` keeps it (resolved: architecture,
representation and length limit filled in) under ``"config"``.
:class:`VAETrainSettings` adds where the molecules come from and how the run
is executed; it is what ``molgen train --config FILE`` reads, from a TOML
file (``configs/train.toml``) or from a run's own ``config.json``, so that

    >>> settings = VAETrainSettings.from_file("runs/a/config.json")       # doctest: +SKIP
    >>> settings.run.out = "runs/b"                                       # doctest: +SKIP
    >>> vae, result = train_from_settings(settings)                       # doctest: +SKIP

repeats run ``a`` (same data, seed and settings: the same weights).

Options left ``None`` take their default, or with ``init_from`` the source
checkpoint's value (architecture, sizes, representation, length limit); the
run folder records the resolved values, and only those that are set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from molgen.chem.standardization import StandardizePolicy
from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.train import KLSchedule, TrainConfig
from molgen.vae.conditioning import parse_property_names

if TYPE_CHECKING:
    from molgen.vae.init_from import InheritedArchitecture

__all__ = ["DataOptions", "KLOptions", "ModelOptions", "OptimOptions", "RunOptions", "VAETrainSettings", "VAETrainingConfig"]

Precision = Literal["auto", "fp32", "bf16", "fp16"]


def _set_only(table: dict[str, Any]) -> dict[str, Any]:
    """The keys that are set: ``None`` means "the default" and is not written."""
    return {k: v for k, v in table.items() if v is not None}


@dataclass
class ModelOptions(ConfigMixin):
    """Architecture of the sequence VAE (:class:`~molgen.models.seq_vae.SeqVAEConfig`); ``None``: the architecture's default."""

    arch: Literal["gru", "transformer"] | None = None  # None: gru, or the init_from checkpoint's
    latent_dim: int | None = None
    decoder_hidden: int | None = None  # GRU state size, or transformer feed-forward width
    decoder_layers: int | None = None
    encoder_hidden: int | None = None
    encoder_layers: int | None = None
    embed_dim: int | None = None  # token embedding (GRU) or model width (transformer)
    n_heads: int | None = None  # transformer only
    dropout: float | None = None

    def sizes(self) -> dict[str, Any]:
        """The options that are set, without ``arch``."""
        return _set_only({k: v for k, v in dataclasses.asdict(self).items() if k != "arch"})


@dataclass
class OptimOptions(ConfigMixin):
    """Optimisation of the run (:class:`~molgen.train.TrainConfig`); the ``None`` ones keep the Trainer's defaults."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"
    seed: int = 0
    max_minutes: float = 0.0
    max_cpu_minutes: float = 0.0
    patience: int = 5
    checkpoint_every: int = 500
    precision: Precision = "auto"
    compile: bool = False
    weight_decay: float | None = None
    grad_clip: float | None = None
    lr_decay: float | None = None
    lr_min_factor: float | None = None
    amp: bool | None = None

    def trainer_config(self) -> TrainConfig:
        """The Trainer's config (checked: a bad value is a ConfigError here)."""
        return TrainConfig(**_set_only(dataclasses.asdict(self)))


@dataclass
class KLOptions(ConfigMixin):
    """The KL weight's schedule (:class:`~molgen.train.KLSchedule`); ``period`` defaults to twice ``warmup_steps``."""

    kind: Literal["constant", "linear", "cyclical"] = "linear"
    beta: float = 0.5
    warmup_steps: int = 2000
    start_step: int | None = None
    period: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if self.period is None:
            self.period = max(1, self.warmup_steps * 2)
        self.schedule()

    def schedule(self) -> KLSchedule:
        return KLSchedule(**_set_only(dataclasses.asdict(self)))


def _typed(cls: type, value: Any, where: str) -> Any:
    """A nested config given as a plain dict (Python callers, older runs) read strictly into ``cls``."""
    return cls.from_dict(value, where) if isinstance(value, dict) else value


@dataclass
class VAETrainingConfig(ConfigMixin):
    """Everything that defines a molecular VAE run besides the data."""

    representation: Literal["smiles", "selfies"] | None = None  # None: selfies, or the init_from checkpoint's
    model: ModelOptions = field(default_factory=ModelOptions)
    train: OptimOptions = field(default_factory=OptimOptions)
    kl: KLOptions = field(default_factory=KLOptions)
    free_bits: float = 0.0
    word_dropout: float = 0.1
    val_fraction: float = 0.05
    max_length: int | None = None  # tokens, without BOS/EOS (None: 100, or init_from's); longer molecules are skipped and counted
    conditions: list[str] = field(default_factory=list)  # property names of a conditional model
    # Probability that a training molecule's condition is replaced by "no condition" (classifier-free guidance).
    condition_dropout: float = 0.0
    # Probability that a training molecule is decoded from a prior draw instead of its own code (conditional models).
    latent_dropout: float = 0.0

    def __post_init__(self) -> None:
        self.model = _typed(ModelOptions, self.model, "model")
        self.train = _typed(OptimOptions, self.train, "train")
        self.kl = _typed(KLOptions, self.kl, "kl")
        if self.conditions:
            self.conditions = parse_property_names(self.conditions)
        if not 0 <= self.condition_dropout < 1:
            raise ConfigError("condition_dropout must be in [0, 1)")
        if self.condition_dropout > 0 and not self.conditions:
            raise ConfigError("condition dropout needs a conditional model; add --condition-on")
        if not 0 <= self.latent_dropout < 1:
            raise ConfigError("latent_dropout must be in [0, 1)")
        if self.latent_dropout > 0 and not self.conditions:
            raise ConfigError("latent dropout needs a conditional model; add --condition-on")
        if self.representation not in (None, "smiles", "selfies"):
            raise ConfigError(f"representation must be smiles or selfies, not {self.representation!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if not 0 <= self.word_dropout < 1:
            raise ConfigError("word_dropout must be in [0, 1)")
        self.train.trainer_config()

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for name in ("model", "train", "kl"):
            out[name] = _set_only(out[name])
        return out

    def training_config(self) -> VAETrainingConfig:
        """Only the fields of :class:`VAETrainingConfig` (drops a subclass's data and run settings)."""
        names = [f.name for f in dataclasses.fields(VAETrainingConfig)]
        return VAETrainingConfig(**{n: getattr(self, n) for n in names})

    def resolved(self, init_from: str | Path | None = None) -> tuple[VAETrainingConfig, InheritedArchitecture]:
        """The config with architecture, representation and length limit filled in, and what came from ``init_from``."""
        from molgen.vae.init_from import inherit_architecture

        sizes = self.model.sizes()
        dropout = sizes.pop("dropout", None)
        shape = inherit_architecture(init_from, self.model.arch, self.representation, self.max_length, **sizes)
        model = ModelOptions.from_dict(_set_only({**shape.model, "dropout": dropout}), "model")
        done = dataclasses.replace(self.training_config(), representation=shape.representation, max_length=shape.max_length, model=model)
        return done, shape


@dataclass
class DataOptions(ConfigMixin):
    """Where the training molecules come from, and how they are read."""

    path: Path | None = None  # SMILES file (.smi/.csv/.tsv/.txt, optionally .gz), "moses-train", or None: the embedded MOSES sample
    smiles_column: str | None = None  # CSV column holding SMILES (None: auto-detected)
    limit: int = 0  # use only the first N molecules (0: all)
    strict: bool = False  # stop at the first unreadable line instead of skipping it
    rejects: Path | None = None  # write skipped lines (with the reason) to this file
    standardize: StandardizePolicy = field(default_factory=StandardizePolicy)  # salts, charges, stereo, isotopes


@dataclass
class RunOptions(ConfigMixin):
    """How the run is executed (none of these changes what a given seed trains, except init_from)."""

    out: Path | None = None  # run folder to create (or continue with resume); not written to config.json
    init_from: str | None = None  # fine-tune from this checkpoint (file, run folder or pretrained name)
    resume: bool = False  # continue the run in `out` from its last checkpoint
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    threads: int = 0  # CPU threads for torch (0: torch's default)
    quiet: bool = False  # no progress bar


#: Keys of a run folder's config.json besides the settings themselves.
_RECORD_ONLY = ("config", "model_config", "vocab", "seed", "environment", "parameters", "init_from", "distributed")


@dataclass
class VAETrainSettings(VAETrainingConfig):
    """A whole ``molgen train`` run: the training config plus its data and run options."""

    data: DataOptions = field(default_factory=DataOptions)
    run: RunOptions = field(default_factory=RunOptions)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.data = _typed(DataOptions, self.data, "data")
        self.run = _typed(RunOptions, self.run, "run")

    @classmethod
    def from_dict(cls, data: Any, where: str | None = None) -> VAETrainSettings:
        """Settings from a TOML table, or from a run folder's ``config.json`` (with overrides written over it)."""
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "vocab" in data:
            data = _settings_of_record(data)
        return super().from_dict(data, where)  # type: ignore[return-value]

    def record(self) -> dict[str, dict[str, Any]]:
        """The ``run`` table a run folder's config.json keeps (``out``, ``resume`` and ``quiet`` are not the run's own)."""
        return {"run": {k: v for k, v in self.run.to_dict().items() if k not in ("out", "resume", "quiet")}}


def _settings_of_record(record: dict[str, Any]) -> dict[str, Any]:
    """A config.json record as settings: its ``config``, the data and run tables, and any override keys beside them."""
    settings = dict(record["config"])
    data_fields = {f.name for f in dataclasses.fields(DataOptions)}
    summary = record.get("data") if isinstance(record.get("data"), dict) else {}
    data = {k: v for k, v in summary.items() if k in data_fields}
    old_path = summary.get("data")  # config.json files before settings were recorded: {"data": path or "embedded:..."}
    if "path" not in data and isinstance(old_path, str) and not old_path.startswith("embedded:"):
        data["path"] = old_path
    settings["data"] = data
    run = dict(record.get("run") or {})
    growth = record.get("init_from")
    if "init_from" not in run and isinstance(growth, dict) and growth.get("path"):
        run["init_from"] = growth["path"]
    settings["run"] = run
    for key, value in record.items():
        if key in _RECORD_ONLY or key in ("data", "run"):
            continue
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **value}
        else:
            settings[key] = value
    return settings
