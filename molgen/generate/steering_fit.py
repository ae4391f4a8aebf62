"""Training of the prefix property predictor that steers decoding (FUDGE).

The predictor and the steering wrapper live in :mod:`molgen.generate.steering`;
this module fits one on labelled molecules, from scratch or continuing an
earlier one (a DAgger round on the model's own steered samples).

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> vae = MoleculeVAE.load()                                             # doctest: +SKIP
    >>> steer = fit_prefix_predictor(vae, smiles, ["logp", "qed", "sa"])    # doctest: +SKIP
    >>> vae.sample(100, condition="logp=2.5", steer=steer)                  # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np
import torch

from molgen.errors import ConfigError
from molgen.generate.steering import (
    PAD,
    PrefixPredictorConfig,
    PrefixPropertyPredictor,
    check_vocabulary,
)
from molgen.train import TrainConfig, fit
from molgen.utils.progress import progress_bar
from molgen.vae.conditioning import ConditionSpec, parse_property_names, property_matrix

__all__ = ["fit_prefix_predictor"]


def fit_prefix_predictor(
    vae,
    smiles: list[str],
    names: str | list[str] = ("logp", "qed", "sa"),
    epochs: int = 3,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    max_cpu_seconds: float = 0.0,
    hidden: int = 128,
    init: PrefixPropertyPredictor | None = None,
    layers: int = 1,
    properties: np.ndarray | None = None,
    show_progress: bool = False,
) -> PrefixPropertyPredictor:
    """Train a prefix predictor for ``vae``'s vocabulary on ``smiles`` (Gaussian NLL at every prefix).

    Properties are normalised like the conditional model's when ``vae`` is
    conditioned on the same names, else with the statistics of ``smiles``.
    ``max_cpu_seconds`` (0: none) stops early on CPU time of this process.
    ``hidden`` and ``layers`` size the GRU (steering evaluates it for every
    candidate token, so its cost grows with both). ``init`` continues
    training that predictor (its names, sizes and
    normalisation), e.g. on the model's own samples, whose chemistry a
    predictor fitted on data alone sees too rarely to judge. ``properties``
    (raw values ``[N, k]`` in the order of ``names``) skips computing them.
    ``show_progress`` prints progress lines (rate, ETA) for the labels and the training.
    """
    if init is not None:
        names = list(init.config.names)
    names = parse_property_names(names)
    if properties is not None and np.shape(properties) != (len(smiles), len(names)):
        raise ConfigError(f"properties must have shape [{len(smiles)}, {len(names)}], got {list(np.shape(properties))}")
    if properties is None:
        with progress_bar(len(smiles), "RDKit labels", show_progress, "mol") as bar:
            raw = property_matrix(smiles, names, progress=bar)
    else:
        raw = np.asarray(properties, dtype=np.float64)
    ok = np.isfinite(raw).all(1)
    good = [s for s, keep in zip(smiles, ok) if keep]
    ids, lengths, kept = vae.tokenize(good)
    if len(kept) == 0:
        raise ConfigError("no training molecule could be tokenised with this model's vocabulary")
    raw = raw[ok][kept]
    if init is not None:
        check_vocabulary(init, vae)
        model = init.train()
    else:
        same = vae.conditions is not None and vae.conditions.names == names
        spec = vae.conditions if same else ConditionSpec.fit(names, raw, seed)
        torch.manual_seed(seed)
        model = PrefixPropertyPredictor(PrefixPredictorConfig(vocab_size=len(vae.vocab), names=names, hidden=hidden, layers=layers), spec, vae.vocab.tokens)
    target = torch.from_numpy(model.spec.normalize(raw))
    task = _PrefixTask(model, ids, lengths, target, max(1, math.ceil(len(kept) / batch_size)), np.random.default_rng(seed))
    # Plain AdamW (its default weight decay) in fp32, no clipping and no early stopping: the loop this replaced.
    config = TrainConfig(
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=0.01, grad_clip=0.0, patience=0, precision="fp32",
        fused=False, seed=seed, max_cpu_minutes=max_cpu_seconds / 60,
    )  # fmt: skip
    fit(task, config, show_progress=show_progress)
    return model.eval()


class _PrefixTask:
    """Batches of tokenised molecules for :func:`~molgen.train.fit`: Gaussian NLL of the properties at every prefix."""

    def __init__(self, model: PrefixPropertyPredictor, ids, lengths, target: torch.Tensor, n_batches: int, rng) -> None:
        self.model, self.ids, self.lengths, self.target = model, ids, lengths, target
        self.n_batches, self.rng = n_batches, rng

    def train_batches(self, epoch: int) -> list[np.ndarray]:
        return np.array_split(self.rng.permutation(len(self.ids)), self.n_batches)

    def val_batches(self) -> list:
        return []

    def step(self, batch: np.ndarray, global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        x = self.ids[batch, : int(self.lengths[batch].max())]
        mean, log_sd = self.model(x)
        err = (self.target[batch].unsqueeze(1) - mean) * torch.exp(-log_sd)
        nll = (0.5 * err.pow(2) + log_sd).sum(-1)
        mask = (x != PAD).float()
        return (nll * mask).sum() / mask.sum(), {}

    def describe_batch(self, batch: np.ndarray) -> str:
        return f"{len(batch)} tokenised molecules"
