"""Bayesian optimization in a VAE's latent space: a BoTorch GP, batch Thompson sampling, trust regions.

The recipe follows TuRBO (Eriksson et al. 2019, "Scalable global optimization
via local Bayesian optimization") as used for molecules by LOL-BO (Maus et al.
2022), with these choices of our own:

* **Surrogate.** By default (``surrogate="tanimoto"``) the GP does not read
  latent coordinates at all: each batch decodes its trust-region candidates
  first, keeps the distinct molecules not scored yet, and Thompson-samples a GP
  with a Tanimoto kernel on their Morgan fingerprints (PMO's GP BO kernel),
  fitted on the scored molecules most similar to the region's centre. Many
  objectives (similarity, rediscovery, MPOs built on them) follow the
  similarity of molecules, which the kernel measures directly and latent
  distance only loosely. The latent space still bounds the search: candidates
  come from the trust region, a cube of side ``length``.
  ``surrogate="latent"`` is the classic latent-space GP.
* **Search space.** A sequence VAE uses only some latent dimensions (the
  default model: about 33 of 128 carry information); the rest are ignored by
  the decoder. The GP therefore works on the top ``dims`` principal
  directions of encoded training molecules, whitened and boxed to
  ``[-bound, bound]``, mapped to the unit cube (``projection="none"`` uses the
  full latent space, scaled the same way).
* **Trust region.** A box around the best point of the current run, its side
  ``length`` times the GP's relative lengthscales (latent surrogate); it doubles after
  ``success_tol`` improving batches, halves after ``failure_tol`` batches that
  do not improve, and a region shorter than ``length_min`` restarts at the
  best molecule not yet used as a centre. Data are kept across restarts; the
  GP is fitted on the ``max_train`` points nearest the centre.
* **Batch selection with de-duplication** (latent surrogate). Many latent points decode to the
  same molecule. Thompson sampling (``acquisition="ts"``) ranks up to
  ``oversample * batch_size`` candidates; they are decoded in that order and
  sent to the oracle until ``batch_size`` *new* molecules are charged. Invalid
  decodes and repeats cost nothing (the oracle counts them); a repeat still
  teaches the GP, with its known score. ``acquisition="qlogei"`` takes the
  batch from qLogEI (sequential greedy) and falls back on candidates ranked by
  analytic LogEI.

* **Weighted retraining** (``finetune_every``, 0 turns it off). LOL-BO updates its
  VAE on the best molecules found so far; we do the same with the rank
  weights of Tripp et al. (2020, "Sample-efficient optimization in the latent
  space of deep generative models via weighted retraining"): every
  ``finetune_every`` batches a private copy of the VAE takes a few Adam steps
  on scored molecules drawn with weight ``1 / (k N + rank)``, and every stored
  point moves to its molecule's code under the updated encoder. The decoder
  then spends more of the trust region on molecules like the best ones. The
  caller's model is never changed.

Objective failures (NaN, an exception for one molecule) are logged by the
oracle and left out of the GP's data; the run continues.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from molgen.errors import ConfigError
from molgen.optimize.api import MethodContext, register_method
from molgen.optimize.bo_config import BOConfig, BORun
from molgen.optimize.bo_region import (
    _propose,
    _propose_molecules,
    _update,
)
from molgen.optimize.bo_retrain import _Tuner
from molgen.optimize.bo_space import (
    LatentBox,
    _Data,
    _encode_starts,
    _initial_design,
    _Molecules,
    _Region,
    _Searcher,
)
from molgen.optimize.oracle import Oracle
from molgen.utils.progress import progress_bar

__all__ = ["BOConfig", "BORun", "LatentBox", "optimize_bo"]


def optimize_bo(vae, oracle: Oracle, config: BOConfig | None = None, start_smiles: list[str] | None = None, seed: int = 0, show_progress: bool = False) -> BORun:
    """Run latent-space Bayesian optimization until the oracle's budget is spent (or no new molecules come).

    Args:
        vae: a :class:`~molgen.vae.MoleculeVAE` (or any object with its ``encode``/``decode``/``config.latent_dim``).
        oracle: scores decoded molecules (objective, constraints, budget, log); needs a finite budget.
        start_smiles: seed molecules for the initial design (None: prior samples).
    """
    cfg = config or BOConfig()
    if oracle.budget is None:
        raise ConfigError("Bayesian optimization needs a finite --budget of oracle calls")
    gen = torch.Generator().manual_seed(seed)
    tuner = _Tuner(vae, cfg, seed) if cfg.finetune_every else None
    vae = tuner.vae if tuner else vae  # the caller's model is never changed
    box = LatentBox.build(vae, cfg)
    run = BORun(space={"projection": cfg.projection, "dims": box.dims, "explained_variance": round(box.explained, 4)})
    start_x = _encode_starts(vae, box, start_smiles) if start_smiles else None
    data = _Data(box.dims)
    searcher = _Searcher(vae, oracle, box, data, run, start_x, _Molecules() if cfg.surrogate == "tanimoto" else None)
    failure_tol = cfg.failure_tol or math.ceil(max(4, box.dims) / cfg.batch_size)
    with progress_bar(oracle.budget, "bo", enabled=show_progress, unit="calls") as bar:
        searcher.evaluate(_initial_design(box, cfg, start_x, gen), min(cfg.n_init, int(oracle.remaining)), step=0)
        if not len(data) and start_smiles:
            _seed_with_mutants(searcher, cfg, gen, run)
        bar.advance(oracle.calls)
        if not len(data):
            raise ConfigError(_empty_design_message(oracle))
        region = _Region(cfg.length_init, int(data.y.argmax()), float(data.y.max()))
        centers = {data.smiles[region.center]}
        stalled, step, retrain_s = 0, 0, 0.0
        while not oracle.exhausted:
            step += 1
            calls, fit_start = oracle.calls, time.perf_counter()
            if cfg.surrogate == "tanimoto":
                ranked, decoded = _propose_molecules(searcher, region, cfg, gen, seed + step)
            else:
                ranked, decoded = _propose(data, region, box.dims, cfg, gen, seed + step), None
            fit_s = time.perf_counter() - fit_start  # GP fit and acquisition (and decoding, for tanimoto)
            want = min(cfg.batch_size, int(oracle.remaining))
            scores = searcher.evaluate(ranked, want, step, decoded)
            stalled = stalled + 1 if not scores else 0
            restarted = _update(region, data, scores, cfg, failure_tol, centers, starved=len(scores) < want / 2 and not oracle.exhausted)
            run.restarts += restarted
            best = float(np.nanmax(oracle.best_so_far())) if oracle.calls else math.nan
            run.batches.append({"step": step, "new": len(scores), "length": round(region.length, 5), "best": best, "restart": restarted,
                                **({"below_floor": region.below_floor} if region.below_floor else {})})  # fmt: skip
            bar.advance(oracle.calls - calls, best=best, gp_fit_s=fit_s, retrain_s=retrain_s)
            if stalled >= cfg.max_stalled:
                run.stopped = "stalled"
                break
            if tuner and step % cfg.finetune_every == 0 and not oracle.exhausted:
                retrain_start = time.perf_counter()
                run.finetunes.append({"step": step, **tuner.update(data)})
                tuner.reencode(data, box)
                retrain_s = time.perf_counter() - retrain_start
                if start_smiles:  # origins are found by distance to the starts' codes, which moved too
                    searcher.start_x = _encode_starts(vae, box, start_smiles)
    return run


_MUTANT_ROUNDS = 10  # rounds of lead mutants tried when the decoded initial design held nothing feasible


def _seed_with_mutants(searcher: _Searcher, cfg: BOConfig, gen: torch.Generator, run: BORun) -> None:
    """An initial design of SELFIES point mutants of the leads, where decoding gave none above the floor.

    Above a high similarity floor the greedy decodes around a lead's code can all fall below it (a
    drug-like lead at 0.6: 49 of 49), and BO had nothing to fit. Mutants of the lead (and of the
    mutants found feasible, :func:`molgen.optimize.explore._mutants`) change one local part of it,
    which is where such molecules are; each feasible one enters the GP's data at the unit
    coordinates of its encoding. Up to ``_MUTANT_ROUNDS`` rounds, until ``n_init`` are scored.
    """
    from molgen.optimize.explore import _mutants

    oracle, want, parents = searcher.oracle, min(cfg.n_init, int(searcher.oracle.remaining)), {}
    n_starts = len(oracle.starts)
    for _ in range(_MUTANT_ROUNDS):
        if len(searcher.data) >= want or oracle.exhausted:
            return
        origins = [i % n_starts for i in range(max(cfg.n_init, n_starts))]
        mutants = _mutants(searcher.vae, oracle, origins, 1.0, gen, parents)
        if not mutants:
            continue
        chosen = list(mutants.items())[: want - len(searcher.data)]
        before = oracle.calls
        oracle([s for _, s in chosen], step=0, origins=[origins[i] for i, _ in chosen])
        run.design_mutants += oracle.calls - before
        scored = [r.smiles for r in oracle.history[before:] if r.status == "ok" and math.isfinite(r.score)]
        if scored:
            codes, kept = searcher.vae.encode(scored)
            searcher._remember(searcher.box.from_latent(codes), [scored[k] for k in kept])


def _empty_design_message(oracle: Oracle) -> str:
    """Why the initial design has no score, and what to change, in one line."""
    counts = oracle.counts
    if counts["infeasible"] or counts["filtered"]:
        return (f"no molecule of BO's initial design met the constraints ({counts['infeasible']} infeasible, {counts['filtered']} filtered); "
                "lower --min-similarity or widen the design with --option start_noise=0.3, or use --method gradient")  # fmt: skip
    return "no molecule of the initial design got a score; check the objective (see the oracle log)"


def _run_bo(ctx: MethodContext) -> dict[str, Any]:
    cfg = BOConfig.from_dict(dict(ctx.options))
    run = optimize_bo(ctx.vae, ctx.oracle, cfg, ctx.starts or None, ctx.seed, ctx.show_progress)
    return {
        "config": cfg.to_dict(),
        "space": run.space,
        "decoded": run.decoded,
        "batches": len(run.batches),
        "restarts": run.restarts,
        "design_mutants": run.design_mutants,
        "stopped": run.stopped,
        "finetunes": run.finetunes,
        "trajectory": run.batches,
    }



register_method("bo", _run_bo)
