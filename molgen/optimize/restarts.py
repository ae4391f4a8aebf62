"""Restarts of gradient optimization's later rounds (:mod:`molgen.optimize.gradient`): which of the best
molecules to restart from (diverse elites: at most ``elite_per_cluster`` picked elites above
``elite_max_similarity`` Tanimoto to a candidate), the restart noise schedule driven by each round's
yield, and the latent points the elites are restarted from."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from molgen import chem
from molgen.optimize.oracle import Oracle

__all__ = ["Restarts", "elite_latents"]


class Restarts:
    """Restart bookkeeping across rounds: the noise schedule, the fingerprints of elite candidates, the round log."""

    def __init__(self, cfg) -> None:  # cfg: the run's GradientConfig
        self.cfg = cfg
        self.noise = cfg.start_noise
        self.elites: list[str] = []
        self._fps: dict[str, Any] = {}

    def pick_elites(self, oracle: Oracle, k: int) -> list[str]:
        """The ``k`` best molecules, or with ``elite_max_similarity < 1`` the best that are not near-copies of better ones."""
        if self.cfg.elite_max_similarity >= 1:
            return [r.smiles for r in oracle.top(k)]
        picked: list[str] = []
        picked_fps: list[Any] = []
        for record in oracle.top():
            fp = self._fps.get(record.smiles)
            if fp is None:
                fp = self._fps[record.smiles] = chem.morgan_fingerprint(record.smiles)
            if picked_fps and int((chem.bulk_tanimoto(fp, picked_fps) > self.cfg.elite_max_similarity).sum()) >= self.cfg.elite_per_cluster:
                continue
            picked.append(record.smiles)
            picked_fps.append(fp)
            if len(picked) == k:
                break
        return picked

    def end_round(self, r: int, new_calls: int, decoded: int, oracle: Oracle) -> dict[str, Any]:
        """Log round ``r`` and set the next round's restart noise from its yield."""
        yield_ = new_calls / decoded if decoded else 0.0
        top = oracle.top(1)
        entry = {"round": r, "noise": round(self.noise, 4), "elites": len(self.elites), "decoded": decoded,
                 "new_calls": new_calls, "yield": round(yield_, 4), "best": top[0].score if top else None}
        if self.cfg.restart_min_yield > 0 and r > 0:  # round 0 starts from the prior: its yield says nothing about restarts
            low = yield_ < self.cfg.restart_min_yield
            self.noise = min(self.noise * self.cfg.restart_noise_growth, self.cfg.restart_max_noise) if low else self.cfg.start_noise
        return entry


def elite_latents(vae, elite: list[str], latents: dict[str, np.ndarray]) -> torch.Tensor:
    """The z each elite was decoded from where known, else its encoding (molecules the model cannot write are dropped)."""
    rows = [latents.get(s) for s in elite]
    missing = [s for s, z in zip(elite, rows) if z is None]
    encoded = vae.encode(missing)[0] if missing else np.zeros((0, vae.config.latent_dim), dtype=np.float32)
    rows = [z for z in rows if z is not None] + list(encoded)
    return torch.from_numpy(np.stack(rows).astype(np.float32)) if rows else torch.zeros(0, vae.config.latent_dim)
