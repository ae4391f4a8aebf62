"""Weighted retraining of latent BO (Tripp et al. 2020): a private copy of the VAE learns from the best molecules."""

from __future__ import annotations

import copy
from typing import Any

import torch

from molgen.errors import ConfigError
from molgen.optimize.bo_config import BOConfig
from molgen.optimize.bo_space import (
    LatentBox,
    _Data,
)
from molgen.train import TrainConfig, fit

# The bo_* modules are one package split by concern; their _private helpers are shared among them only.
__all__ = []


class _Tuner:
    """Weighted retraining of a private copy of the VAE on the molecules scored so far."""

    def __init__(self, vae, cfg: BOConfig, seed: int) -> None:
        if not isinstance(getattr(vae, "model", None), torch.nn.Module) or not hasattr(vae, "tokenize"):
            raise ConfigError("bo finetune_every needs a trained molecular VAE (a molgen checkpoint); use finetune_every=0")
        self.vae = copy.deepcopy(vae)
        self.cfg = cfg
        self.beta = float(vae.meta.get("training", {}).get("kl", {}).get("beta", 1.0))  # the KL weight it was trained with
        self.gen = torch.Generator().manual_seed(seed + 7919)
        self.opt = torch.optim.Adam(self.vae.model.parameters(), lr=cfg.finetune_lr)

    def update(self, data: _Data) -> dict[str, Any]:
        """``finetune_steps`` Adam steps on batches drawn by rank weight; returns the batch losses of the first and last steps."""
        scores = dict(zip(data.smiles, data.y.tolist()))  # one entry per molecule (repeats score the same)
        ranked = sorted(scores, key=scores.__getitem__, reverse=True)
        weights = 1.0 / (self.cfg.finetune_k * len(ranked) + torch.arange(len(ranked), dtype=torch.float64))
        draws = torch.multinomial(weights, self.cfg.finetune_steps * self.cfg.finetune_batch, replacement=True, generator=self.gen)
        task = _RetrainTask(self.vae, [[ranked[i] for i in batch] for batch in draws.view(self.cfg.finetune_steps, -1).tolist()], self.beta, self.gen)
        if task.batches:
            # One pass over the drawn batches; no clipping (only measured, for the NaN check) and fp32, as before.
            config = TrainConfig(epochs=1, batch_size=self.cfg.finetune_batch, lr=self.cfg.finetune_lr, grad_clip=0.0, patience=0, precision="fp32")
            try:
                fit(task, config, device=self.vae.device, generator=self.gen, optimizer=self.opt)
            finally:
                self.vae.model.eval()
        losses = task.losses
        return {"molecules": len(ranked), "loss_first": round(losses[0], 3) if losses else None, "loss_last": round(losses[-1], 3) if losses else None}

    def reencode(self, data: _Data, box: LatentBox) -> None:
        """Move every stored point to its molecule's code under the updated encoder (trust-region centres included)."""
        distinct = list(dict.fromkeys(data.smiles))
        z, kept = self.vae.encode(distinct)
        where = {distinct[i]: row for row, i in enumerate(kept)}
        x = box.from_latent(z)
        rows = [i for i, s in enumerate(data.smiles) if s in where]
        data.x[rows] = x[[where[data.smiles[i]] for i in rows]].to(data.x.dtype)


class _RetrainTask:
    """The drawn batches of molecules as a :func:`~molgen.train.fit` task: the VAE's loss at the KL weight it was trained with."""

    def __init__(self, vae, batches: list[list[str]], beta: float, gen: torch.Generator) -> None:
        self.vae, self.model, self.beta, self.gen = vae, vae.model, beta, gen
        self.batches = [b for b in (self._tensors(smiles) for smiles in batches) if b is not None]
        self.losses: list[float] = []

    def _tensors(self, smiles: list[str]):
        ids, lengths, kept = self.vae.tokenize(smiles)
        if not len(ids):
            return None
        cond = self.vae.own_condition_tensor([smiles[i] for i in kept])  # a conditional model learns from its own properties
        return ids.to(self.vae.device), lengths, None if cond is None else cond.to(self.vae.device), [smiles[i] for i in kept]

    def train_batches(self, epoch: int) -> list:
        return self.batches

    def val_batches(self) -> list:
        return []

    def step(self, batch, global_step: int) -> tuple[torch.Tensor, dict[str, float]]:
        ids, lengths, cond, _ = batch
        loss = self.model(ids, lengths, beta=self.beta, generator=self.gen, cond=cond).loss
        self.losses.append(loss.item())
        return loss, {}

    def describe_batch(self, batch) -> str:
        return f"{len(batch[3])} molecules, first: {', '.join(batch[3][:3])}"
