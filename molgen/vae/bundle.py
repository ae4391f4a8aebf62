"""The molecular VAE as users hold it: network, vocabulary and tokenizer; load, save, encode, decode.

:class:`MoleculeVAE` bundles a :class:`~molgen.models.seq_vae.SeqVAE` with its
tokenizer and vocabulary, so whatever a CLI command does takes three lines of
Python::

    >>> from molgen.vae import MoleculeVAE
    >>> vae = MoleculeVAE.load()            # the pretrained default in data/
    >>> smiles = vae.sample(100, seed=0)    # doctest: +SKIP

Sampling itself lives in :mod:`molgen.generate` (``vae.sample`` is a shortcut
for :func:`molgen.generate.sample` with a
:class:`~molgen.generate.SampleRequest` of the same keywords).

Decoded strings are checked by RDKit and returned as canonical SMILES, or
``None`` where the model produced something RDKit rejects.

A conditional model (trained with ``conditions``) takes a property request
wherever molecules are generated::

    >>> vae.sample(100, condition="logp=2.5,qed=0.8")  # doctest: +SKIP

and, if it was trained with condition dropout, classifier-free guidance
(:mod:`molgen.generate.guidance`) that follows the request more closely::

    >>> vae.sample(100, condition="logp=2.5", guidance=2.0)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from molgen import chem
from molgen import pretrained as _pretrained
from molgen.errors import CheckpointError, ConfigError
from molgen.generate.decoding import DecodeOptions, decode_tokens, lerp, slerp
from molgen.generate.guidance import guided_decoder
from molgen.generate.prior import LatentPrior
from molgen.generate.strings import strings_to_smiles
from molgen.generate.tuning import sampling_temperature
from molgen.models.build import build_seq_vae
from molgen.models.seq_vae import SeqVAEBase, SeqVAEConfig
from molgen.tokenizers import Vocabulary, get_tokenizer
from molgen.utils.checkpoint import load_checkpoint, save_checkpoint
from molgen.utils.runtime import resolve_device
from molgen.vae.conditioning import ConditionSpec, property_matrix

__all__ = [
    "MoleculeVAE",
    "ReconstructionResult",
    "resolve_model_path",
    "DEFAULT_MODEL",
    "strings_to_smiles",
]

DEFAULT_MODEL = _pretrained.data_dir() / _pretrained.PRETRAINED["default"][0]
MODEL_FILE = "model.safetensors"


def resolve_model_path(spec: str | Path | None) -> Path:
    """``None`` -> the shipped default model; a pretrained name (``default``, ``zinc``, ...) -> its file;
    a run folder -> its ``model.safetensors``; else the file."""
    path = _pretrained.resolve_model_spec(spec)
    if path.is_dir():
        path = path / MODEL_FILE
        if not path.exists():
            raise CheckpointError(f"{spec} holds no {MODEL_FILE}; is it a molgen run folder whose training finished an epoch?")
    return path


@dataclass
class ReconstructionResult:
    """Greedy reconstruction of each input from its posterior mean."""

    inputs: list[str]
    outputs: list[str | None]

    @property
    def accuracy(self) -> float:
        return float(np.mean([a == b for a, b in zip(self.inputs, self.outputs)])) if self.inputs else float("nan")


class MoleculeVAE:
    """A trained sequence VAE with its tokenizer and vocabulary."""

    kind = "seq_vae"

    def __init__(
        self,
        model: SeqVAEBase,
        vocab: Vocabulary,
        meta: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        latent_prior: LatentPrior | None = None,
    ) -> None:
        self.model = model
        self.vocab = vocab
        self.meta = dict(meta or {})
        #: A fitted prior (:mod:`molgen.generate.prior`) that sampling uses instead of N(0, I), if set.
        self.latent_prior = latent_prior
        spec = self.meta.get("conditions")
        self.conditions = ConditionSpec.from_dict(spec) if spec else None
        if (len(self.conditions) if self.conditions else 0) != model.config.cond_dim:
            raise CheckpointError(f"the model expects {model.config.cond_dim} condition(s) but the metadata describes {spec and spec.get('names')}")
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        self.tokenizer = get_tokenizer(model.config.representation)
        self._id_to_token = np.array(vocab.tokens, dtype=object)

    @property
    def config(self) -> SeqVAEConfig:
        return self.model.config

    @property
    def representation(self) -> str:
        return self.model.config.representation

    # -- persistence -------------------------------------------------------------
    def save(self, path: str | Path, extra_meta: dict[str, Any] | None = None) -> Path:
        meta = dict(self.meta)
        meta.update(extra_meta or {})
        meta.update(kind=self.kind, model_config=self.config.to_dict(), vocab=self.vocab.to_dict())
        tensors = dict(self.model.state_dict())
        meta.pop("latent_prior", None)
        if self.latent_prior is not None:
            tensors.update(self.latent_prior.to_tensors())
            meta["latent_prior"] = self.latent_prior.info
        return save_checkpoint(path, tensors, meta)

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | torch.device = "auto") -> MoleculeVAE:
        """Load a checkpoint (file or run folder; ``None`` for the shipped default)."""
        path = resolve_model_path(path)
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != cls.kind:
            raise CheckpointError(f"{path} holds a {meta.get('kind')!r} checkpoint, not a molecular VAE ({cls.kind})")
        try:
            config = SeqVAEConfig.from_dict(meta["model_config"])
            vocab = Vocabulary.from_dict(meta["vocab"])
            model = build_seq_vae(config)
            prior = LatentPrior.pop_from(tensors, meta.get("latent_prior"))
            if prior is not None and prior.latent_dim != config.latent_dim:
                raise CheckpointError(f"its latent prior has {prior.latent_dim} dimensions, the model {config.latent_dim}")
            model.load_state_dict(tensors)
            if meta.get("conditions"):
                ConditionSpec.from_dict(meta["conditions"])
        except CheckpointError as exc:
            raise CheckpointError(f"{path}: {exc}") from None
        except (KeyError, ConfigError, RuntimeError, TypeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise CheckpointError(f"{path} does not match the SeqVAE layout ({first}); it is corrupted or foreign") from None
        if len(vocab) != config.vocab_size:
            raise CheckpointError(f"{path}: vocabulary size {len(vocab)} != model vocab_size {config.vocab_size}")
        meta["path"] = str(path)
        return cls(model, vocab, meta, device, prior)

    # -- conditions --------------------------------------------------------------
    def condition_tensor(
        self, condition: str | dict[str, float] | np.ndarray | None, n: int, seed: int = 0
    ) -> torch.Tensor | None:
        """Normalised conditions ``[n, k]`` for a request, raw property rows or ``None`` (training mix)."""
        if self.conditions is None:
            if condition is not None:
                raise ConfigError("this model is unconditional; train one with --condition-on to use --condition")
            return None
        if isinstance(condition, np.ndarray):
            if condition.shape != (n, len(self.conditions)):
                raise ConfigError(f"condition rows must have shape [{n}, {len(self.conditions)}], got {list(condition.shape)}")
            raw = condition
        else:
            raw = self.conditions.request_matrix(condition, n, seed)
        return torch.from_numpy(self.conditions.normalize(raw))

    def own_conditions(self, smiles: list[str]) -> np.ndarray | None:
        """Raw property rows of the molecules themselves (for encoding), or ``None`` if unconditional."""
        return None if self.conditions is None else property_matrix(smiles, self.conditions.names)

    def own_condition_tensor(self, smiles: list[str]) -> torch.Tensor | None:
        """Normalised conditions ``[n, k]`` of the molecules' own properties (what encoding and
        training feed a conditional model), or ``None`` if unconditional."""
        own = self.own_conditions(smiles)
        return None if own is None else self.condition_tensor(own, len(smiles))

    # -- strings <-> ids ---------------------------------------------------------
    def ids_to_strings(self, ids: torch.Tensor) -> list[str]:
        """Token ids ``[B, L]`` (EOS-terminated, PAD after) -> raw model strings (SMILES or SELFIES)."""
        ids = ids.cpu().numpy()
        is_end = ids == 2  # EOS
        lengths = np.where(is_end.any(1), is_end.argmax(1), ids.shape[1])
        body = np.arange(ids.shape[1])[None, :] < lengths[:, None]
        # A sequence containing a special token (e.g. <unk>) is not a molecule the
        # model could spell: it decodes to "" (invalid). A sequence that reached
        # max_length without EOS is cut there, as the MOSES baselines do.
        broken = ((ids < 4) & body).any(1)
        tokens = self._id_to_token[ids]
        return ["" if broken[i] else "".join(tokens[i, : lengths[i]]) for i in range(len(ids))]

    def tokenize(self, smiles: list[str], max_length: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Tokenise SMILES into padded ids ``[B, T]`` and lengths; returns the indices that could be tokenised.

        A molecule with a token outside the vocabulary (e.g. a stereocentre for a
        model trained without stereochemistry) is left out, never read as ``<unk>``.
        """
        max_length = max_length or self.config.max_length
        seqs, kept = [], []
        for i, s in enumerate(smiles):
            try:
                if chem.check_smiles(s) is not None:  # a monster costs the tokenizer seconds and can never fit
                    continue
                toks = self.tokenizer.tokenize(s)
            except Exception:
                continue
            if len(toks) + 1 > max_length:  # room for EOS
                continue
            if any(t not in self.vocab for t in toks):  # <unk> would stand in for the atom: not this molecule
                continue
            seqs.append(toks)
            kept.append(i)
        if not seqs:
            return torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, dtype=torch.long), kept
        ids = self.vocab.encode_batch(seqs)
        return torch.from_numpy(ids), torch.tensor([len(s) + 2 for s in seqs]), kept

    # -- core operations ---------------------------------------------------------
    @torch.inference_mode()
    def encode(self, smiles: list[str], sample: bool = False, batch_size: int = 512, seed: int = 0, progress=None) -> tuple[np.ndarray, list[int]]:
        """Latent vectors (posterior means, or samples with ``sample=True``) for the tokenisable inputs.

        Returns ``(z [n_kept, latent_dim], kept_indices)``. ``progress`` (a
        :func:`molgen.utils.progress.progress_bar` handle) advances per batch.
        """
        mu, logvar, kept = self.posterior(smiles, batch_size, progress)
        if not sample:
            return mu.numpy(), kept
        gen = torch.Generator().manual_seed(seed)  # noise drawn batch by batch in input order, as before
        z = [SeqVAEBase.reparameterize(mu[i : i + batch_size], logvar[i : i + batch_size], gen) for i in range(0, len(mu), batch_size)]
        return torch.cat(z).numpy() if z else mu.numpy(), kept

    @torch.inference_mode()
    def posterior(self, smiles: list[str], batch_size: int = 512, progress=None) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The encoder's Gaussian for each tokenisable input: ``(mu, logvar, kept_indices)``, float32 on the CPU."""
        ids, lengths, kept = self.tokenize(list(smiles))
        cond = self.own_condition_tensor([smiles[i] for i in kept])
        mu = torch.empty(len(ids), self.config.latent_dim)
        logvar = torch.empty_like(mu)
        # Batches of similar lengths, each cut to its own longest row: no step is spent on padding.
        order = torch.argsort(lengths, stable=True)
        for start in range(0, len(ids), batch_size):
            rows = order[start : start + batch_size]
            x = ids[rows, : int(lengths[rows].max())].to(self.device)
            c = None if cond is None else cond[rows].to(self.device)
            m, lv = self.model.encode(x, lengths[rows], c)
            mu[rows], logvar[rows] = m.float().cpu(), lv.float().cpu()
            if progress is not None:
                progress.advance(len(rows))
        return mu, logvar, kept

    def decode(
        self,
        z: np.ndarray | torch.Tensor,
        options: DecodeOptions | None = None,
        seed: int = 0,
        batch_size: int = 1024,
        n_jobs: int | None = None,
        condition: str | dict[str, float] | np.ndarray | None = None,
        guidance: float = 1.0,
        prefix: torch.Tensor | None = None,
    ) -> list[str | None]:
        """Decode latent vectors to canonical SMILES (``None`` where RDKit rejects the result).

        ``prefix``: token ids ``[n, P]`` each row's decode must start with (see
        :func:`~molgen.generate.decoding.decode_tokens`).

        ``condition`` (conditional models only): a request such as
        ``"logp=2.5"``, raw property rows ``[n, k]``, or ``None`` for vectors
        drawn from the training distribution. ``guidance`` is the
        classifier-free guidance weight (1: plain conditional decoding).
        """
        z = torch.as_tensor(np.asarray(z, dtype=np.float32))
        if z.ndim != 2 or z.size(1) != self.config.latent_dim:
            raise ConfigError(f"latent vectors must have shape [n, {self.config.latent_dim}], got {list(z.shape)}")
        decoder = guided_decoder(self.model, guidance)
        options = options or DecodeOptions(strategy="greedy")
        cond = self.condition_tensor(condition, len(z), seed)
        h = self.model.context(z, cond)
        gen = torch.Generator().manual_seed(seed)
        texts: list[str] = []
        for start in range(0, len(z), batch_size):
            rows = None if prefix is None else prefix[start : start + batch_size]
            ids = decode_tokens(decoder, h[start : start + batch_size].to(self.device), options, gen, rows)
            texts.extend(self.ids_to_strings(ids))
        return strings_to_smiles(texts, self.representation, n_jobs)

    def sample(self, n: int, **options) -> list[str | None]:
        """``n`` molecules (canonical SMILES, ``None`` where RDKit rejects a decode): a shortcut for
        ``molgen.generate.sample(vae, SampleRequest(n=n, **options))``; the keywords are the request's fields."""
        from molgen.generate.request import SampleRequest
        from molgen.generate.sampler import sample

        return sample(self, SampleRequest(n=n, **options))

    @property
    def default_temperature(self) -> float:
        """The sampling temperature stored with the model (``molgen tune-sampling``), else 1."""
        return sampling_temperature(self.meta)

    def reconstruct(self, smiles: list[str], batch_size: int = 512) -> ReconstructionResult:
        """Encode to the posterior mean and decode greedily; exact canonical match counts as success."""
        canon = [chem.canonical_smiles(s) for s in smiles]
        valid = [c for c in canon if c]
        z, kept = self.encode(valid, batch_size=batch_size)
        own = self.own_conditions([valid[i] for i in kept])
        outputs = self.decode(z, DecodeOptions(strategy="greedy"), batch_size=batch_size, condition=own)
        return ReconstructionResult([valid[i] for i in kept], outputs)

    def interpolate(
        self, start: str, end: str, steps: int = 10, method: Literal["slerp", "linear"] = "slerp"
    ) -> list[str | None]:
        """Greedy decodes of ``steps`` points between the posterior means of two molecules."""
        if steps < 2:
            raise ConfigError("interpolation needs at least 2 steps")
        if method not in ("slerp", "linear"):
            raise ConfigError(f"unknown interpolation method {method!r}; use slerp or linear")
        ends = [chem.parse_smiles(s) and chem.canonical_smiles(s) for s in (start, end)]
        z, kept = self.encode(ends)
        if len(kept) != 2:
            raise ConfigError("both end points must be tokenisable with this model's vocabulary and length limit")
        a, b = torch.from_numpy(z[0]), torch.from_numpy(z[1])
        path = slerp(a, b, steps) if method == "slerp" else lerp(a, b, steps)
        own = self.own_conditions(ends)
        cond = None if own is None else lerp(torch.from_numpy(own[0]), torch.from_numpy(own[1]), steps).numpy()
        return self.decode(path.numpy(), condition=cond)

