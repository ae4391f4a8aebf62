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
        model, losses = self.vae.model, []
        model.train()
        try:
            for batch in draws.view(self.cfg.finetune_steps, -1).tolist():
                smiles = [ranked[i] for i in batch]
                ids, lengths, kept = self.vae.tokenize(smiles)
                if not len(ids):
                    continue
                cond = self.vae.own_condition_tensor([smiles[i] for i in kept])  # a conditional model learns from its own properties
                cond = None if cond is None else cond.to(self.vae.device)
                out = model(ids.to(self.vae.device), lengths, beta=self.beta, generator=self.gen, cond=cond)
                self.opt.zero_grad(set_to_none=True)
                out.loss.backward()
                self.opt.step()
                losses.append(out.loss.item())
        finally:
            model.eval()
        return {"molecules": len(ranked), "loss_first": round(losses[0], 3) if losses else None, "loss_last": round(losses[-1], 3) if losses else None}

    def reencode(self, data: _Data, box: LatentBox) -> None:
        """Move every stored point to its molecule's code under the updated encoder (trust-region centres included)."""
        distinct = list(dict.fromkeys(data.smiles))
        z, kept = self.vae.encode(distinct)
        where = {distinct[i]: row for row, i in enumerate(kept)}
        x = box.from_latent(z)
        rows = [i for i, s in enumerate(data.smiles) if s in where]
        data.x[rows] = x[[where[data.smiles[i]] for i in rows]].to(data.x.dtype)

