"""Likelihood scoring: how well each molecule fits a trained sequence VAE's distribution.

For a molecule ``x`` (its canonical SMILES, tokenised as the model was
trained) two estimates of ``log p(x)`` in nats:

* the ELBO, ``E_q[log p(x|z)] - KL(q(z|x) || p(z))`` (Kingma & Welling 2014),
  with the expectation averaged over ``samples`` draws ``z ~ q(z|x)`` and the
  KL in closed form;
* the importance-weighted estimate of Burda et al. 2016 ("Importance weighted
  autoencoders"), ``log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x)``, a lower bound
  that is tighter than the ELBO and tends to ``log p(x)`` as ``K`` grows.

Both count the SELFIES/SMILES string the tokenizer produces; a molecule has
many strings, so these are log-probabilities of that canonical spelling. A
conditional model scores ``log p(x | c(x))`` with ``c(x)`` the molecule's own
properties. Longer molecules have lower totals simply because they are
longer, so ``iw_ll_per_token`` is reported too.

Molecules the model cannot spell at all (a token outside its vocabulary, or
longer than its maximum length) have probability zero under it; they get the
status ``out_of_vocabulary`` / ``too_long``, no score, and are always flagged.

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> frame = score_molecules(MoleculeVAE.load(), ["CCOc1ccccc1C(=O)N"])  # doctest: +SKIP
    >>> list(frame.columns)                                                 # doctest: +SKIP
    ['smiles', 'status', 'n_tokens', 'elbo', 'recon_ll', 'kl', 'iw_ll', 'iw_ll_per_token']
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from molgen import chem
from molgen.errors import ConfigError
from molgen.vae import MoleculeVAE

__all__ = ["COLUMNS", "auroc", "flag_threshold", "score_molecules"]

COLUMNS = ["smiles", "status", "n_tokens", "elbo", "recon_ll", "kl", "iw_ll", "iw_ll_per_token"]
_LOG_2PI = math.log(2 * math.pi)


def _status(vae: MoleculeVAE, smiles: str | None) -> tuple[str, list[int] | None]:
    if smiles is None:
        return "invalid", None
    try:
        tokens = vae.tokenizer.tokenize(smiles)
    except Exception:  # the tokenizer cannot spell it (e.g. SELFIES rejects the valence)
        return "out_of_vocabulary", None
    ids = vae.vocab.encode(tokens)
    if any(i == vae.vocab.UNK for i in ids):
        return "out_of_vocabulary", None
    if len(ids) - 1 > vae.config.max_length:  # decoder targets: tokens + EOS
        return "too_long", None
    return "ok", ids


@torch.inference_mode()
def _score_batch(
    vae: MoleculeVAE, seqs: list[list[int]], cond: torch.Tensor | None, samples: int, gen: torch.Generator
) -> dict[str, np.ndarray]:
    model, dev = vae.model, vae.device
    lengths = torch.tensor([len(s) for s in seqs])
    ids = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
    ids = ids.to(dev)
    c = None if cond is None else cond.to(dev)
    mu, logvar = model.encode(ids, lengths, c)
    b, d = mu.shape
    eps = torch.randn(samples, b, d, generator=gen).to(dev)
    z = mu + eps * torch.exp(0.5 * logvar)  # [K, B, D]

    def rows(t: torch.Tensor) -> torch.Tensor:  # [B, ...] -> [K * B, ...], sample-major like z
        return t.unsqueeze(0).expand(samples, *t.shape).reshape(samples * b, *t.shape[1:])

    h = model.context(z.reshape(samples * b, d), None if c is None else rows(c))
    inputs, targets = rows(ids[:, :-1]), rows(ids[:, 1:])
    logits = model.decode_logits(h, inputs).float()
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=0, reduction="none").sum(1)
    log_px = -nll.view(samples, b)
    log_pz = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
    log_qz = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(-1)
    iw = torch.logsumexp(log_px + log_pz - log_qz, dim=0) - math.log(samples)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
    recon = log_px.mean(0)
    return {
        "recon_ll": recon.cpu().double().numpy(),
        "kl": kl.cpu().double().numpy(),
        "elbo": (recon - kl).cpu().double().numpy(),
        "iw_ll": iw.cpu().double().numpy(),
    }


def score_molecules(
    vae: MoleculeVAE,
    smiles: Sequence[str],
    samples: int = 32,
    batch_size: int = 64,
    seed: int = 0,
    progress=None,
    strip_stereo: bool = False,
) -> pd.DataFrame:
    """Per-molecule ELBO and importance-weighted log-likelihood (nats), one row per input, in order.

    Args:
        vae: the model.
        smiles: molecules; each is canonicalised before tokenising.
        samples: ``K``, draws from ``q(z|x)`` per molecule (the IW estimate tightens as it grows).
        batch_size: molecules per forward pass (each is repeated ``K`` times).
        seed: the draws of ``z``; the same seed and batch size give the same scores.
        progress: optional handle with ``advance(n)`` (see :func:`molgen.utils.progress.progress_bar`).
        strip_stereo: score each molecule without its stereochemistry (and isotopes), for
            models whose training data had none, such as MOSES-trained ones; the
            ``smiles`` column keeps the input as given.

    Returns:
        A frame with :data:`COLUMNS`; unscorable rows have NaN scores and say why in ``status``.
    """
    if samples < 1:
        raise ConfigError("the number of importance samples must be >= 1")
    if batch_size < 1:
        raise ConfigError("batch_size must be >= 1")
    canon = [chem.canonical_smiles(s, isomeric=not strip_stereo) if s else None for s in smiles]
    statuses, seqs = zip(*(_status(vae, s) for s in canon)) if canon else ((), ())
    frame = pd.DataFrame({"smiles": list(smiles), "status": list(statuses)})
    frame["n_tokens"] = [len(s) - 1 if s is not None else 0 for s in seqs]  # tokens + EOS
    for col in COLUMNS[3:]:
        frame[col] = np.nan
    ok = [i for i, s in enumerate(seqs) if s is not None]
    cond = vae.own_condition_tensor([canon[i] for i in ok])
    gen = torch.Generator().manual_seed(seed)
    # Similar lengths in one batch waste less padding; the order is restored by index.
    order = sorted(range(len(ok)), key=lambda j: len(seqs[ok[j]]))
    for start in range(0, len(order), batch_size):
        part = order[start : start + batch_size]
        rows = [ok[j] for j in part]
        out = _score_batch(vae, [seqs[i] for i in rows], None if cond is None else cond[part], samples, gen)
        for col, values in out.items():
            frame.loc[rows, col] = values
        if progress is not None:
            progress.advance(len(part))
    frame["iw_ll_per_token"] = frame["iw_ll"] / frame["n_tokens"].where(frame["n_tokens"] > 0)
    return frame[COLUMNS]


def flag_threshold(reference_scores: Sequence[float], quantile: float = 0.01) -> float:
    """The ``quantile`` of scores on reference (in-distribution) molecules; lower scores get flagged."""
    if not 0 < quantile < 1:
        raise ConfigError("the flag quantile must be in (0, 1)")
    values = np.asarray(reference_scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ConfigError("no reference molecule could be scored; pass a reference set the model can represent")
    return float(np.quantile(values, quantile))


def auroc(inlier_scores: Sequence[float], outlier_scores: Sequence[float]) -> float:
    """Probability that a random inlier scores higher than a random outlier (ties count one half).

    NaN scores (molecules the model cannot spell) count as the lowest possible.
    """
    from sklearn.metrics import roc_auc_score

    a = np.nan_to_num(np.asarray(inlier_scores, dtype=np.float64), nan=-np.inf)
    b = np.nan_to_num(np.asarray(outlier_scores, dtype=np.float64), nan=-np.inf)
    if len(a) == 0 or len(b) == 0:
        raise ConfigError("AUROC needs at least one inlier and one outlier score")
    scores = np.concatenate([a, b])
    # roc_auc_score rejects infinities; any value below every finite score keeps the ranking.
    finite = scores[np.isfinite(scores)]
    floor = (finite.min() - 1.0) if len(finite) else 0.0
    scores = np.where(np.isfinite(scores), scores, floor)
    labels = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    return float(roc_auc_score(labels, scores))
