"""``molgen train``: a sequence VAE on the user's molecules (settings from flags and/or ``--config FILE``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli._common import _policy
from molgen.cli.options import (
    ConfigFile,
    DeviceOpt,
    QuietOpt,
    RejectsOpt,
    SeedOpt,
    SmilesColumnOpt,
    StrictOpt,
    ThreadsOpt,
    set_path,
    settings_from,
)

#: Where each flag goes in :class:`~molgen.vae.train_config.VAETrainSettings`.
TRAIN_FLAGS = {
    "data": "data.path", "smiles_column": "data.smiles_column", "limit": "data.limit", "strict": "data.strict", "rejects": "data.rejects",
    "out_dir": "run.out", "init_from": "run.init_from", "resume": "run.resume", "device": "run.device", "threads": "run.threads",
    "quiet": "run.quiet", "representation": "representation", "max_length": "max_length", "val_fraction": "val_fraction",
    "free_bits": "free_bits", "word_dropout": "word_dropout", "condition_dropout": "condition_dropout", "latent_dropout": "latent_dropout",
    "condition_on": lambda d, v: set_path(d, "conditions", [p.strip() for p in v.split(",") if p.strip()]),
    "arch": "model.arch", "latent_dim": "model.latent_dim", "decoder_hidden": "model.decoder_hidden",
    "decoder_layers": "model.decoder_layers", "encoder_hidden": "model.encoder_hidden", "encoder_layers": "model.encoder_layers",
    "embed_dim": "model.embed_dim", "n_heads": "model.n_heads", "epochs": "train.epochs", "batch_size": "train.batch_size",
    "lr": "train.lr", "lr_schedule": "train.lr_schedule", "seed": "train.seed", "max_minutes": "train.max_minutes",
    "max_cpu_minutes": "train.max_cpu_minutes", "patience": "train.patience", "checkpoint_every": "train.checkpoint_every",
    "precision": "train.precision", "compile_model": "train.compile", "beta": "kl.beta", "kl_schedule": "kl.kind",
    "kl_warmup": "kl.warmup_steps",
}  # fmt: skip


@app.command()
def train(
    ctx: typer.Context,
    config: ConfigFile = None,
    data: Optional[Path] = typer.Option(None, "--data", help="SMILES file (.smi/.csv/.tsv/.txt, optionally .gz); default: embedded MOSES sample"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="run folder to create (or continue with --resume); required unless the config file gives run.out"),
    representation: Optional[str] = typer.Option(None, help="smiles or selfies (default: selfies, or the --init-from checkpoint's)"),
    smiles_column: SmilesColumnOpt = None,
    epochs: int = typer.Option(10, help="maximum number of epochs"),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    lr_schedule: str = typer.Option("constant", help="constant, or cosine: anneal to 2% of --lr over the epochs or the time budget"),
    arch: Optional[str] = typer.Option(None, help="gru or transformer (self-attention encoder/decoder); default: gru, or the --init-from checkpoint's"),
    latent_dim: Optional[int] = typer.Option(None, help="latent dimensions (default 128); with --init-from every size left unset is the checkpoint's"),
    decoder_hidden: Optional[int] = typer.Option(None, help="GRU state size, or transformer feed-forward width (default 512)"),
    decoder_layers: Optional[int] = typer.Option(None, help="GRU layers (default 2) or transformer blocks (default 3)"),
    encoder_hidden: Optional[int] = typer.Option(None, help="GRU state size (default 256), or transformer feed-forward width (512)"),
    encoder_layers: Optional[int] = typer.Option(None, help="GRU layers (default 1) or transformer blocks (default 2)"),
    embed_dim: Optional[int] = typer.Option(None, help="token embedding (GRU, default 64) or model width (transformer, 128)"),
    n_heads: Optional[int] = typer.Option(None, help="attention heads (transformer only, default 4)"),
    condition_on: Optional[str] = typer.Option(None, "--condition-on", help="train a conditional model on these properties, e.g. logp,qed,sa"),
    condition_dropout: float = typer.Option(0.0, "--condition-dropout", help="probability of training a molecule without its condition, which enables sample --guidance (e.g. 0.15)"),
    latent_dropout: float = typer.Option(0.0, "--latent-dropout", help="fraction of molecules decoded from a prior draw instead of their code, so the decoder learns the properties from the conditions; at 0.5 the decoder ignored z (a conditional language model; docs/conditional_benchmarks.md)"),
    beta: float = typer.Option(0.5, help="final KL weight"),
    kl_schedule: str = typer.Option("linear", help="constant, linear or cyclical"),
    kl_warmup: int = typer.Option(2000, help="steps of the KL ramp (per cycle for cyclical, whose period is twice this)"),
    free_bits: float = typer.Option(0.0, help="KL floor per latent dimension, nats"),
    word_dropout: float = typer.Option(0.1, help="fraction of decoder inputs replaced by <unk>"),
    max_length: Optional[int] = typer.Option(None, help="longest molecule in tokens; longer ones are skipped and counted (default 100, or the --init-from checkpoint's)"),
    val_fraction: float = typer.Option(0.05),
    max_minutes: float = typer.Option(0.0, help="stop after this many minutes (0: no limit)"),
    max_cpu_minutes: float = typer.Option(0.0, help="stop after this many CPU-minutes of this process (0: no limit)"),
    patience: int = typer.Option(5, help="early-stopping patience in epochs (0 disables)"),
    checkpoint_every: int = typer.Option(500, help="steps between resumable checkpoints"),
    limit: int = typer.Option(0, help="use only the first N molecules (0: all)"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    strict: StrictOpt = False,
    rejects: RejectsOpt = None,
    init_from: Optional[str] = typer.Option(None, help="fine-tune: start from this checkpoint's weights, and its architecture and representation unless given; a file, run folder or pretrained name (default, zinc, drug-like; molgen info --list); its vocabulary grows by any new tokens of --data, nothing is dropped"),
    threads: ThreadsOpt = 0,
    precision: str = typer.Option("auto", help="auto (fp16 mixed precision on CUDA, bf16 autocast on CPUs with AVX512-BF16/AMX, else fp32), fp32, bf16 or fp16 (CUDA)"),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the training forward pass (mostly for GPUs: fuses small kernels; the first steps pay the compilation)"),
    quiet: QuietOpt = False,
) -> None:
    """Train a sequence VAE on your molecules (--data moses-train uses the cached MOSES training set).

    --config FILE reads the settings from a TOML file (configs/train.toml) or a run's config.json, which repeats that run.
    """
    from molgen.chem.standardization import StandardizePolicy
    from molgen.console import err
    from molgen.vae.train_run import VAETrainSettings, summary_line, train_from_settings

    settings = settings_from(ctx, VAETrainSettings, config, TRAIN_FLAGS)
    if _policy() != StandardizePolicy():  # the global --keep-salts/--neutralize/... options typed before the command
        settings.data.standardize = _policy()
    vae, result = train_from_settings(settings)
    err.print(summary_line(result, settings.run.out))
