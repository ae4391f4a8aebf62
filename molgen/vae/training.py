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
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from molgen import chem
from molgen.config import ConfigMixin
from molgen.datasets import BucketBatchSampler, train_val_split
from molgen.datasets.token_cache import (
    CachedTokens,
    default_token_cache,
    load_tokens,
    save_tokens,
    token_cache_key,
)
from molgen.errors import ConfigError, DataError
from molgen.models.build import build_seq_vae
from molgen.models.seq_vae import SeqVAEConfig
from molgen.tokenizers import SPECIAL_TOKENS, Vocabulary, get_tokenizer
from molgen.train import KLSchedule, TrainConfig, Trainer, TrainResult, distributed
from molgen.train.trainer import RESUME_FILE
from molgen.train.vocab_growth import extend_vocabulary, grow_state_dict
from molgen.utils.io import RunLock, atomic_output, atomic_write_text
from molgen.utils.runtime import environment_info, resolve_device, seed_everything
from molgen.vae.bundle import MODEL_FILE, MoleculeVAE
from molgen.vae.conditioning import ConditionSpec, parse_property_names, property_matrix

__all__ = ["VAETrainingConfig", "TokenizedData", "tokenize_smiles", "train_vae", "SeqVAETask", "model_options"]


@dataclass
class VAETrainingConfig(ConfigMixin):
    """Everything that defines a molecular VAE run besides the data."""

    representation: Literal["smiles", "selfies"] = "selfies"
    model: dict[str, Any] = field(default_factory=dict)  # SeqVAEConfig overrides
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides
    kl: dict[str, Any] = field(default_factory=lambda: {"kind": "linear", "beta": 0.5, "warmup_steps": 2000})
    free_bits: float = 0.0
    word_dropout: float = 0.1
    val_fraction: float = 0.05
    max_length: int = 100  # tokens, without BOS/EOS; longer molecules are skipped and counted
    conditions: list[str] = field(default_factory=list)  # property names of a conditional model
    # Probability that a training molecule's condition is replaced by "no condition" (classifier-free guidance).
    condition_dropout: float = 0.0
    # Probability that a training molecule is decoded from a prior draw instead of its own code (conditional models).
    latent_dropout: float = 0.0

    def __post_init__(self) -> None:
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
        if self.representation not in ("smiles", "selfies"):
            raise ConfigError(f"representation must be smiles or selfies, not {self.representation!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if not 0 <= self.word_dropout < 1:
            raise ConfigError("word_dropout must be in [0, 1)")
        TrainConfig.from_dict(self.train)
        KLSchedule(**self.kl)



@dataclass
class TokenizedData:
    ids: np.ndarray  # [N, T] int64, BOS ... EOS then PAD
    lengths: np.ndarray  # [N] tokens including BOS and EOS
    smiles: list[str]
    skipped: dict[str, int]


def _tokenize_one(smiles: str, representation: str) -> list[str] | None:
    try:
        return get_tokenizer(representation).tokenize(smiles)
    except Exception:  # any molecule the tokenizer cannot represent is skipped and counted
        return None


def _untokenizable(smiles: str, reason: str) -> None:
    """A molecule whose worker process died or timed out is skipped like an untokenizable one."""
    return None


def tokenize_smiles(
    smiles: list[str],
    representation: str,
    max_length: int,
    vocab: Vocabulary | None = None,
    n_jobs: int | None = None,
    cache_dir: str | Path | None = None,
    cache_min: int = 50_000,
    extend: bool = False,
) -> tuple[TokenizedData, Vocabulary]:
    """Tokenise (in a process pool for large inputs), build or apply a vocabulary, pad to an id array.

    With ``extend``, tokens missing from ``vocab`` are appended to it
    (:func:`~molgen.train.vocab_growth.extend_vocabulary`) instead of being
    read as ``<unk>``; the returned vocabulary is then the grown one.

    Inputs of at least ``cache_min`` molecules are cached on disk
    (:mod:`molgen.datasets.token_cache`, under ``cache_dir`` or
    ``$MOLGEN_CACHE/tokens``); a later call with the same molecules, settings
    and vocabulary memory-maps the arrays instead of tokenising again.
    """
    use_cache = len(smiles) >= cache_min
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else default_token_cache()
        vocab_key = (dict(vocab.to_dict(), extend=True) if extend else vocab.to_dict()) if vocab else None
        key = token_cache_key(smiles, representation, max_length, vocab_key)
        hit = load_tokens(key, folder)
        if hit is not None:
            vocab = Vocabulary.from_dict(hit.vocab) if vocab is None or extend else vocab
            kept_smiles = [smiles[i] for i in hit.kept.tolist()]
            return TokenizedData(hit.ids, hit.lengths.astype(np.int64), kept_smiles, dict(hit.skipped)), vocab
    token_lists = chem.pmap(partial(_tokenize_one, representation=representation), smiles, n_jobs=n_jobs, on_failure=_untokenizable)
    skipped = {"untokenizable": 0, "too_long": 0}
    kept_tokens, kept = [], []
    for i, toks in enumerate(token_lists):
        if toks is None:
            skipped["untokenizable"] += 1
        elif len(toks) > max_length:
            skipped["too_long"] += 1
        else:
            kept_tokens.append(toks)
            kept.append(i)
    if not kept_tokens:
        raise DataError(f"no molecule could be tokenised within max_length={max_length}; check the input or raise --max-length")
    if vocab is None:
        vocab = Vocabulary.build(kept_tokens)
    elif extend:
        vocab = extend_vocabulary(vocab, kept_tokens)[0]
    lengths = np.array([len(t) + 2 for t in kept_tokens], dtype=np.int64)
    ids = vocab.encode_batch(kept_tokens)
    if use_cache:
        save_tokens(key, folder, CachedTokens(ids, lengths, np.array(kept), vocab.to_dict(), skipped))
    return TokenizedData(ids, lengths, [smiles[i] for i in kept], skipped), vocab


def _growth_line(path: str | Path, old_size: int, added: list[str]) -> str:
    """The one line a fine-tune prints about its vocabulary."""
    if not added:
        return f"vocabulary: all tokens of the data are in {path}'s {old_size - len(SPECIAL_TOKENS)} tokens; none added"
    shown = " ".join(added[:8]) + (" ..." if len(added) > 8 else "")
    return f"vocabulary: added {len(added)} token(s) to {path}'s {old_size - len(SPECIAL_TOKENS)} ({shown}); old rows kept exactly"


def _warm_start(vae: MoleculeVAE, path: str | Path, seed: int = 0) -> None:
    """Copy weights from a compatible checkpoint (fresh optimizer, same architecture, same or grown vocabulary).

    A vocabulary that extends the source's (the source's tokens first, in
    order) grows the token-indexed layers (:mod:`molgen.train.vocab_growth`).

    An unconditional source may also start a conditional run of the same
    architecture: the weights that read the condition (the trailing input
    columns of every layer that sees ``[..., c]``) start at zero, so training
    begins from exactly the source model and learns to use the properties.
    The same holds for the "no condition" flag of condition dropout, which a
    conditional source without it gains.
    """
    source = MoleculeVAE.load(path, device="cpu")
    expected = vae.config.to_dict()
    if vae.vocab.tokens[: len(source.vocab)] != source.vocab.tokens:
        raise ConfigError(f"--init-from {path}: this run's vocabulary does not extend the checkpoint's; start a new run from it")
    expected["vocab_size"] = len(source.vocab)
    if source.config.cond_dim == 0:
        expected["cond_dim"] = 0
    if not source.config.null_condition:
        expected["null_condition"] = False
    if source.config.cond_dim and source.conditions and vae.conditions and source.conditions.names != vae.conditions.names:
        raise ConfigError(
            f"--init-from {path} is conditioned on {', '.join(source.conditions.names)}, this run on {', '.join(vae.conditions.names)}"
        )
    if source.config.to_dict() != expected:
        raise ConfigError(
            f"--init-from {path}: architecture {source.config.to_dict()} differs from this run's {vae.config.to_dict()}; "
            "pass the same model options"
        )
    state = vae.model.state_dict()
    grown = grow_state_dict(source.model.state_dict(), state, len(source.vocab), seed=seed)
    for name, weight in grown.items():
        target = state[name]
        if target.shape != weight.shape:
            target.zero_()
            target[..., : weight.shape[-1]] = weight
        else:
            target.copy_(weight)
    vae.model.load_state_dict(state)


def model_options(arch: str = "gru", **sizes: int | None) -> dict[str, Any]:
    """:class:`SeqVAEConfig` overrides for ``arch``: the sizes given (``None``: default) over that architecture's defaults."""
    from molgen.models.transformer_vae import TRANSFORMER_DEFAULTS

    if arch not in ("gru", "transformer"):
        raise ConfigError(f"unknown architecture {arch!r}; choose gru or transformer")
    given = {k: v for k, v in sizes.items() if v is not None}
    if arch == "gru" and "n_heads" in given:
        raise ConfigError("--n-heads applies to --arch transformer only")
    base: dict[str, Any] = dict(TRANSFORMER_DEFAULTS) if arch == "transformer" else {}
    return {"arch": arch, **base, **given}


def _condition_rows(
    config: VAETrainingConfig, train: TokenizedData, val: TokenizedData | None
) -> tuple[dict[str, np.ndarray], ConditionSpec | None]:
    """Normalised property rows per split and the spec fitted on the training split (none if unconditional)."""
    if not config.conditions:
        return {}, None
    raw = {"train": property_matrix(train.smiles, config.conditions)}
    if val is not None:
        raw["val"] = property_matrix(val.smiles, config.conditions)
    spec = ConditionSpec.fit(config.conditions, raw["train"], seed=TrainConfig.from_dict(config.train).seed)
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
        self.kl = KLSchedule(**cfg.kl)
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
) -> tuple[MoleculeVAE, TrainResult]:
    """Train a molecular VAE into the run folder ``out_dir`` and return the best model.

    The folder receives ``config.json`` (resolved config, seed, versions,
    device), ``model.safetensors`` (best validation ELBO), ``last.safetensors``
    (resumable state), ``metrics.jsonl``/``metrics.csv``, ``loss_curve.png`` and
    ``train.smi`` (the training molecules, for novelty) unless
    ``train_set_name`` names a known set such as ``moses-train``.
    """
    out = Path(out_dir)
    dist_info, dev, started = distributed.init_distributed(resolve_device(device))
    # Only rank 0 writes to the run folder, so only it takes the lock.
    with RunLock(out) if dist_info.is_main else contextlib.nullcontext():
        try:
            return _train_vae(smiles, out, config, dev, dist_info, resume, show_progress, train_set_name, data_summary, init_from)
        finally:
            if started:
                distributed.shutdown()


def _train_vae(
    smiles: list[str],
    out: Path,
    config: VAETrainingConfig | None,
    dev: torch.device,
    dist_info: distributed.DistInfo,
    resume: bool,
    show_progress: bool,
    train_set_name: str | None,
    data_summary: dict[str, Any] | None,
    init_from: str | Path | None,
) -> tuple[MoleculeVAE, TrainResult]:
    if resume:
        saved = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else None
        if saved is None:
            raise DataError(f"nothing to resume in {out} (no config.json); start without --resume")
        config = VAETrainingConfig.from_dict(saved["config"])
        vocab = Vocabulary.from_dict(saved["vocab"])
        # Killed before its first checkpoint: nothing is lost by starting the run over.
        resume = (out / RESUME_FILE).exists()
    else:
        saved = None
        config = config or VAETrainingConfig()
        vocab = MoleculeVAE.load(init_from, device="cpu").vocab if init_from else None
    source_vocab_size = len(vocab) if init_from and not resume and vocab is not None else None
    tcfg = TrainConfig.from_dict(config.train)
    tcfg.autocast_dtype(dev)  # a precision the device cannot run is refused before the run folder is written
    generator = seed_everything(tcfg.seed)
    train_smi, val_smi = train_val_split(list(smiles), config.val_fraction, seed=tcfg.seed)
    # A fine-tune grows the source's vocabulary by the tokens of its data instead of reading them as <unk>.
    grow = source_vocab_size is not None
    train_data, vocab = tokenize_smiles(train_smi, config.representation, config.max_length, vocab, extend=grow)
    val_data = None
    if val_smi:
        val_data, vocab = tokenize_smiles(val_smi, config.representation, config.max_length, vocab, extend=grow)
    added = vocab.tokens[source_vocab_size:] if grow else []
    cond_rows, spec = _condition_rows(config, train_data, val_data)
    model_cfg = SeqVAEConfig(
        vocab_size=len(vocab),
        representation=config.representation,
        max_length=config.max_length + 1,
        cond_dim=len(config.conditions),
        null_condition=config.condition_dropout > 0,
        **config.model,
    )
    torch.manual_seed(tcfg.seed)
    vae = MoleculeVAE(build_seq_vae(model_cfg), vocab, {"conditions": spec.to_dict()} if spec else None, device=dev)
    if init_from and not resume:
        _warm_start(vae, init_from, seed=tcfg.seed)
        if dist_info.is_main:
            print(_growth_line(init_from, source_vocab_size or len(vocab), added), file=sys.stderr, flush=True)
    skipped = {k: train_data.skipped[k] + (val_data.skipped[k] if val_data else 0) for k in train_data.skipped}
    digest = hashlib.sha256("\n".join(train_data.smiles + (val_data.smiles if val_data else [])).encode()).hexdigest()
    if saved is not None:
        _check_same_data(saved.get("data", {}), digest, len(train_data.smiles), out)
    run_info = {
        "config": config.to_dict(),
        "model_config": model_cfg.to_dict(),
        "vocab": vocab.to_dict(),
        "seed": tcfg.seed,
        "environment": environment_info(dev),
        "data": dict(
            data_summary or {}, **({"vocab_added": added} if added else {}),
            n_train=len(train_data.smiles), n_val=len(val_data.smiles) if val_data else 0, skipped=skipped, sha256=digest,
        ),
        "parameters": vae.model.num_parameters(),
    }
    # Where the weights and the vocabulary came from; a resumed run keeps what its start recorded.
    growth = (saved or {}).get("init_from")
    if init_from and not resume:
        growth = {"path": str(init_from), "vocab_size": source_vocab_size, "vocab_added": added}
    if growth:
        run_info["init_from"] = growth
    if dist_info.enabled:
        run_info["distributed"] = {"world_size": dist_info.world_size, "backend": "nccl" if dev.type == "cuda" else "gloo"}
    if not resume and dist_info.is_main:
        atomic_write_text(out / "config.json", json.dumps(run_info, indent=2))
        if train_set_name is None:
            with atomic_output(out / "train.smi", "w") as fh:
                fh.write("".join(s + "\n" for s in train_data.smiles))
    task = SeqVAETask(vae, train_data, val_data, config, tcfg.batch_size, tcfg.seed, dev, generator)
    task.conditions = cond_rows
    task.export_meta = {
        "train_set": train_set_name or "train.smi",
        "n_train": len(train_data.smiles),
        "training": config.to_dict(),
        "environment": run_info["environment"],
    }
    if growth:
        task.export_meta["init_from"] = growth
    trainer = Trainer(task, tcfg, out, dev, generator=generator, show_progress=show_progress)
    result = trainer.fit(resume=resume)
    best = MoleculeVAE.load(out / MODEL_FILE, device=dev)
    return best, result
