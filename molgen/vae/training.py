"""Training a :class:`~molgen.vae.MoleculeVAE` on a list of SMILES.

Glue between the data (tokenised once into a padded id array), the model and
the model-agnostic :class:`~molgen.train.Trainer`: the task below turns index
batches into tensors and the SeqVAE loss; the Trainer does the rest.

Default hyper-parameters follow what worked for the MOSES VAE baseline (GRU
encoder 256x2 directions, decoder 512, latent 128) with the decoder cut to two
layers and a smaller embedding so that a CPU can train it in about an hour.
The KL weight ramps linearly from 0 (Bowman et al. 2016); ``beta`` < 1 trades
prior-sample quality for reconstruction, and free bits keep every latent
dimension in use.

Example::

    >>> config = VAETrainingConfig(train=OptimOptions(epochs=2))        # doctest: +SKIP
    >>> vae, result = train_vae(smiles, "runs/a", config)               # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molgen.console import note
from molgen.datasets import BucketBatchSampler, train_val_split
from molgen.errors import DataError
from molgen.models.build import build_seq_vae
from molgen.models.seq_vae import SeqVAEConfig
from molgen.tokenizers import Vocabulary
from molgen.train import Trainer, TrainResult, distributed
from molgen.train.trainer import RESUME_FILE
from molgen.utils.io import RunLock, atomic_output, atomic_write_text
from molgen.utils.runtime import environment_info, resolve_device, seed_everything
from molgen.vae.bundle import MODEL_FILE, MoleculeVAE
from molgen.vae.conditioning import ConditionSpec, property_matrix
from molgen.vae.init_from import model_options
from molgen.vae.tokenized import TokenizedData, tokenize_smiles
from molgen.vae.train_config import (
    KLOptions,
    ModelOptions,
    OptimOptions,
    VAETrainingConfig,
)
from molgen.vae.warm_start import growth_line, warm_start

__all__ = [
    "KLOptions",
    "ModelOptions",
    "OptimOptions",
    "SeqVAETask",
    "TokenizedData",
    "VAETrainingConfig",
    "model_options",
    "tokenize_smiles",
    "train_vae",
]

# Earlier name of warm_start, kept for callers and tests that use it.
_warm_start = warm_start


def _condition_rows(
    config: VAETrainingConfig, train: TokenizedData, val: TokenizedData | None
) -> tuple[dict[str, np.ndarray], ConditionSpec | None]:
    """Normalised property rows per split and the spec fitted on the training split (none if unconditional)."""
    if not config.conditions:
        return {}, None
    raw = {"train": property_matrix(train.smiles, config.conditions)}
    if val is not None:
        raw["val"] = property_matrix(val.smiles, config.conditions)
    spec = ConditionSpec.fit(config.conditions, raw["train"], seed=config.train.seed)
    return {split: spec.normalize(rows) for split, rows in raw.items()}, spec


class SeqVAETask:
    """Adapter between index batches over :class:`TokenizedData` and the SeqVAE loss."""

    def __init__(
        self,
        vae: MoleculeVAE,
        train: TokenizedData,
        val: TokenizedData | None,
        cfg: VAETrainingConfig,
        batch_size: int,
        seed: int,
        device: torch.device,
        generator: torch.Generator,
    ) -> None:
        self.vae = vae
        self.model = vae.model
        self.train, self.val = train, val
        self.cfg = cfg
        self.kl = cfg.kl.schedule()
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.generator = generator
        self.export_meta: dict[str, Any] = {}
        # Normalised property rows per split ("train"/"val") of a conditional model.
        self.conditions: dict[str, np.ndarray] = {}

    def _tensors(self, data: TokenizedData, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = data.lengths[idx]
        # Cached ids are a memory-mapped uint8/int32 array: gather the rows, widen to int64.
        rows = np.asarray(data.ids[idx, : int(lengths.max())], dtype=np.int64)
        ids = torch.from_numpy(rows).to(self.device, non_blocking=True)
        return ids, torch.from_numpy(lengths)

    def train_batches(self, epoch: int) -> list[tuple[str, np.ndarray]]:
        sampler = BucketBatchSampler(self.train.lengths, self.batch_size, shuffle=True, seed=self.seed)
        sampler.set_epoch(epoch)
        return [("train", np.asarray(b)) for b in sampler]

    def val_batches(self) -> list[tuple[str, np.ndarray]]:
        if self.val is None or len(self.val.lengths) == 0:
            return []
        sampler = BucketBatchSampler(self.val.lengths, self.batch_size, shuffle=False, seed=self.seed)
        return [("val", np.asarray(b)) for b in sampler]

    def step(self, batch: tuple[str, np.ndarray], global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        split, idx = batch
        data = self.train if split == "train" else self.val
        ids, lengths = self._tensors(data, idx)
        beta = self.kl(global_step)
        cond = torch.from_numpy(self.conditions[split][idx]).to(self.device) if self.conditions else None
        if cond is not None and split == "train" and self.cfg.condition_dropout > 0:
            gen_device = self.generator.device if self.generator is not None else cond.device
            drop = torch.rand(len(idx), generator=self.generator, device=gen_device).to(cond.device) < self.cfg.condition_dropout
            cond = cond.masked_fill(drop.unsqueeze(1), float("nan"))  # NaN row: "no condition"
        out = self.model(
            ids,
            lengths,
            beta=beta,
            free_bits=self.cfg.free_bits,
            word_dropout=self.cfg.word_dropout,
            generator=self.generator,
            cond=cond,
            latent_dropout=self.cfg.latent_dropout if split == "train" else 0.0,
        )
        active = float((out.kl_per_dim > 0.01).sum())
        logs = {
            "recon": out.recon.item(),
            "kl": out.kl.item(),
            "beta": beta,
            "token_accuracy": out.token_accuracy.item(),
            "active_units": active,
        }
        return out.loss, logs

    def shard_batch(self, batch: tuple[str, np.ndarray], rank: int, world_size: int) -> tuple[str, np.ndarray]:
        """This rank's share of a batch (distributed training); a batch too small to share is used whole."""
        split, idx = batch
        if len(idx) < world_size:
            return batch
        return split, np.array_split(idx, world_size)[rank]

    def describe_batch(self, batch: tuple[str, np.ndarray]) -> str:
        split, idx = batch
        data = self.train if split == "train" else self.val
        shown = ", ".join(data.smiles[i] for i in idx[:3])
        return f"{len(idx)} {split} molecules, first: {shown}"

    def export(self, path: Path, extra_meta: dict[str, Any]) -> None:
        self.vae.save(path, {**self.export_meta, **extra_meta})


def _check_same_data(saved: dict[str, Any], digest: str, n_train: int, out: Path) -> None:
    """A resumed run must see the molecules it started with, or its checkpoint's batch positions mean nothing."""
    same = saved["sha256"] == digest if "sha256" in saved else saved.get("n_train", n_train) == n_train
    if not same:
        raise DataError(
            f"the data differ from those the run in {out} started with ({saved.get('n_train')} training molecules then, "
            f"{n_train} now); resume with the same --data and --limit, or start a new run"
        )


def train_vae(
    smiles: list[str],
    out_dir: str | Path,
    config: VAETrainingConfig | None = None,
    device: str = "auto",
    resume: bool = False,
    show_progress: bool = True,
    train_set_name: str | None = None,
    data_summary: dict[str, Any] | None = None,
    init_from: str | Path | None = None,
    record: dict[str, Any] | None = None,
) -> tuple[MoleculeVAE, TrainResult]:
    """Train a molecular VAE into the run folder ``out_dir`` and return the best model.

    The folder receives ``config.json`` (resolved config, seed, versions,
    device; ``data_summary`` goes into its ``data`` table, ``record``'s tables
    beside it), ``model.safetensors`` (best validation ELBO), ``last.safetensors``
    (resumable state), ``metrics.jsonl``/``metrics.csv``, ``loss_curve.png`` and
    ``train.smi`` (the training molecules, for novelty) unless
    ``train_set_name`` names a known set such as ``moses-train``.
    """
    out = Path(out_dir)
    dist_info, dev, started = distributed.init_distributed(resolve_device(device))
    # Only rank 0 writes to the run folder, so only it takes the lock.
    with RunLock(out) if dist_info.is_main else contextlib.nullcontext():
        try:
            start = _starting_point(out, config, resume, init_from, dist_info.is_main)
            return _train_vae(smiles, out, start, dev, dist_info, show_progress, train_set_name, dict(data_summary or {}), record or {})
        finally:
            if started:
                distributed.shutdown()


@dataclass
class _Start:
    """Where a run starts: its resolved config, the vocabulary it begins with and what the folder already holds."""

    config: VAETrainingConfig
    vocab: Vocabulary | None
    saved: dict[str, Any] | None  # the config.json of the run being resumed
    resume: bool  # a resumable state exists
    init_from: str | Path | None  # the checkpoint a new fine-tune starts from

    @property
    def source_vocab_size(self) -> int | None:
        return len(self.vocab) if self.init_from and self.vocab is not None else None


def _starting_point(out: Path, config: VAETrainingConfig | None, resume: bool, init_from, is_main: bool) -> _Start:
    if resume:
        saved = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else None
        if saved is None:
            raise DataError(f"nothing to resume in {out} (no config.json); start without --resume")
        # Killed before its first checkpoint: nothing is lost by starting the run over.
        vocab = Vocabulary.from_dict(saved["vocab"])
        return _Start(VAETrainingConfig.from_dict(saved["config"]), vocab, saved, (out / RESUME_FILE).exists(), None)
    config, shape = (config or VAETrainingConfig()).resolved(init_from)
    if shape.inherited and is_main:
        note(f"architecture from {init_from}: {shape.describe()}")
    vocab = MoleculeVAE.load(init_from, device="cpu").vocab if init_from else None
    return _Start(config, vocab, None, False, init_from)


def _tokenized_splits(smiles: list[str], start: _Start) -> tuple[TokenizedData, TokenizedData | None, Vocabulary, list[str]]:
    """Training and validation molecules as token ids, the run's vocabulary and the tokens a fine-tune added to it."""
    config = start.config
    train_smi, val_smi = train_val_split(list(smiles), config.val_fraction, seed=config.train.seed)
    # A fine-tune grows the source's vocabulary by the tokens of its data instead of reading them as <unk>.
    grow = start.source_vocab_size is not None
    train_data, vocab = tokenize_smiles(train_smi, config.representation, config.max_length, start.vocab, extend=grow)
    val_data = None
    if val_smi:
        val_data, vocab = tokenize_smiles(val_smi, config.representation, config.max_length, vocab, extend=grow)
    return train_data, val_data, vocab, vocab.tokens[start.source_vocab_size :] if grow else []


def _build_vae(config: VAETrainingConfig, vocab: Vocabulary, spec: ConditionSpec | None, dev: torch.device) -> MoleculeVAE:
    model_cfg = SeqVAEConfig(
        vocab_size=len(vocab),
        representation=config.representation,
        max_length=config.max_length + 1,
        cond_dim=len(config.conditions),
        null_condition=config.condition_dropout > 0,
        arch=config.model.arch or "gru",
        **config.model.sizes(),
    )
    torch.manual_seed(config.train.seed)
    return MoleculeVAE(build_seq_vae(model_cfg), vocab, {"conditions": spec.to_dict()} if spec else None, device=dev)


def _train_vae(
    smiles: list[str],
    out: Path,
    start: _Start,
    dev: torch.device,
    dist_info: distributed.DistInfo,
    show_progress: bool,
    train_set_name: str | None,
    data_summary: dict[str, Any],
    record: dict[str, Any],
) -> tuple[MoleculeVAE, TrainResult]:
    config = start.config
    tcfg = config.train.trainer_config()
    tcfg.autocast_dtype(dev)  # a precision the device cannot run is refused before the run folder is written
    generator = seed_everything(tcfg.seed)
    train_data, val_data, vocab, added = _tokenized_splits(smiles, start)
    cond_rows, spec = _condition_rows(config, train_data, val_data)
    vae = _build_vae(config, vocab, spec, dev)
    if start.init_from:
        warm_start(vae, start.init_from, seed=tcfg.seed)
        if dist_info.is_main:
            note(growth_line(start.init_from, start.source_vocab_size or len(vocab), added))
    kept = train_data.smiles + (val_data.smiles if val_data else [])
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()
    if start.saved is not None:
        _check_same_data(start.saved.get("data", {}), digest, len(train_data.smiles), out)
    skipped = {k: train_data.skipped[k] + (val_data.skipped[k] if val_data else 0) for k in train_data.skipped}
    data_summary.update({"vocab_added": added} if added else {})
    data_summary.update(n_train=len(train_data.smiles), n_val=len(val_data.smiles) if val_data else 0, skipped=skipped, sha256=digest)
    run_info = {
        "config": config.to_dict(),
        "model_config": vae.config.to_dict(),
        "vocab": vocab.to_dict(),
        "seed": tcfg.seed,
        "environment": environment_info(dev),
        "data": data_summary,
        "parameters": vae.model.num_parameters(),
        **{k: v for k, v in record.items() if k != "data"},
    }
    # Where the weights and the vocabulary came from; a resumed run keeps what its start recorded.
    growth = (start.saved or {}).get("init_from")
    if start.init_from:
        growth = {"path": str(start.init_from), "vocab_size": start.source_vocab_size, "vocab_added": added}
    if growth:
        run_info["init_from"] = growth
    if dist_info.enabled:
        run_info["distributed"] = {"world_size": dist_info.world_size, "backend": "nccl" if dev.type == "cuda" else "gloo"}
    if start.saved is None and dist_info.is_main:
        atomic_write_text(out / "config.json", json.dumps(run_info, indent=2))
        if train_set_name is None:
            with atomic_output(out / "train.smi", "w") as fh:
                fh.write("".join(s + "\n" for s in train_data.smiles))
    task = SeqVAETask(vae, train_data, val_data, config, tcfg.batch_size, tcfg.seed, dev, generator)
    task.conditions = cond_rows
    task.export_meta = {"train_set": train_set_name or "train.smi", "n_train": len(train_data.smiles), "training": config.to_dict()}
    task.export_meta.update({"environment": run_info["environment"]}, **({"init_from": growth} if growth else {}))
    result = Trainer(task, tcfg, out, dev, generator=generator, show_progress=show_progress).fit(resume=start.resume)
    return MoleculeVAE.load(out / MODEL_FILE, device=dev), result
