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

__all__ = ["Restarts", "elite_latents", "design_rounds", "encode_design", "initial_design", "origins_for", "round_starts"]


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


def encode_design(vae, smiles: list[str]) -> torch.Tensor | None:
    """Codes of the design molecules the model can write (the others are skipped, not an error)."""
    z, kept = vae.encode(smiles)
    return torch.from_numpy(z) if len(kept) else None


def design_rounds(cfg, budget: int) -> Any:
    """Rounds for a search from design molecules: small enough that the budget spans several rounds
    (so restarts from the best molecules found get their turn), as many as the budget needs."""
    from dataclasses import replace

    per_start = cfg.steps // cfg.decode_every + 1
    n_starts = int(min(cfg.n_starts, max(8, budget // (2 * per_start))))
    return replace(cfg, n_starts=n_starts, rounds=max(cfg.rounds, cfg.explore_max_rounds))


def initial_design(vae, n: int, start_z: torch.Tensor | None, noise: float, gen: torch.Generator) -> torch.Tensor:
    """``n`` prior samples, or the starts' codes and noisy copies of them."""
    if start_z is None:
        return torch.randn(n, vae.config.latent_dim, generator=gen)
    reps = start_z.repeat((n + len(start_z) - 1) // len(start_z), 1)[:n]
    jitter = torch.randn(reps.shape, generator=gen) * noise
    jitter[: len(start_z)] = 0  # each start itself is in the design
    return reps + jitter


def origins_for(n: int, start_z: torch.Tensor | None) -> list[int | None]:
    """The lead each of ``n`` rows of :func:`initial_design` belongs to (None without leads)."""
    return [None] * n if start_z is None else [i % len(start_z) for i in range(n)]


def round_starts(
    vae, oracle: Oracle, cfg, start_z, round_index: int, gen, latents, restarts: Restarts, design_z=None
) -> tuple[torch.Tensor, list[int | None]]:
    """Round 0 (and every round with seed molecules): the seeds or prior samples. Later rounds without
    seeds: noisy copies of the best molecules' latents for ``elite_fraction`` of the starts, prior samples
    (or noisy copies of a random draw of the design molecules) for the rest."""
    if start_z is not None:
        z = initial_design(vae, cfg.n_starts, start_z, cfg.start_noise, gen)
        if round_index > 0:  # the exact seeds were already ascended from in round 0
            z[: len(start_z)] += torch.randn(z[: len(start_z)].shape, generator=gen) * cfg.start_noise
        return z, origins_for(cfg.n_starts, start_z)
    if design_z is not None:
        pick = torch.randperm(len(design_z), generator=gen)[: cfg.n_starts]
        z = initial_design(vae, cfg.n_starts, design_z[pick], cfg.start_noise, gen)
    else:
        z = torch.randn(cfg.n_starts, vae.config.latent_dim, generator=gen)
    n_elite = int(cfg.n_starts * cfg.elite_fraction) if round_index > 0 else 0
    restarts.elites = restarts.pick_elites(oracle, max(1, n_elite // cfg.elite_copies)) if n_elite else []
    if restarts.elites:
        ez = elite_latents(vae, restarts.elites, latents if cfg.elite_latent == "decoded" else {})
        if len(ez):
            reps = ez.repeat((n_elite + len(ez) - 1) // len(ez), 1)[:n_elite]
            z[:n_elite] = reps + torch.randn(reps.shape, generator=gen) * restarts.noise
    return z, [None] * cfg.n_starts
