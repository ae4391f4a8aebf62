"""TuRBO trust regions of latent BO: growing, shrinking and restarting a region, and proposing its next batch."""

from __future__ import annotations

import math
import warnings

import torch

from molgen.chem.fingerprints import fingerprint_array
from molgen.optimize.bo_config import BOConfig
from molgen.optimize.bo_gp import (
    _candidates,
    _copula,
    _exact_gp,
    _fit_gp,
    _hypers,
    _rank_logei,
    _tanimoto_kernel,
    _thompson_order,
)
from molgen.optimize.bo_space import (
    _FP_BITS,
    _Data,
    _Region,
    _Searcher,
)

# The bo_* modules are one package split by concern; their _private helpers are shared among them only.
__all__ = []


def _update(region: _Region, data: _Data, scores: list[float], cfg: BOConfig, failure_tol: int, centers: set[str], starved: bool = False) -> bool:
    """TuRBO's length rule; returns True when the region restarted.

    ``starved``: the batch found fewer than half the new molecules it wanted, because the region is
    small against the decoder's resolution (many points decode to one molecule). That is not the
    surrogate's failure: the region doubles instead, and restarts once at full length.
    """
    finite = [s for s in scores if math.isfinite(s)]
    batch_best = max(finite) if finite else -math.inf
    improved = batch_best > region.best + 1e-3 * abs(region.best)
    region.stale = 0 if improved else region.stale + 1
    if cfg.patience and region.stale >= cfg.patience:
        return _restart(region, data, cfg, centers)
    if starved and batch_best <= region.best:
        if region.length >= cfg.length_max:
            return _restart(region, data, cfg, centers)
        region.length = min(2 * region.length, cfg.length_max)
        return False
    if improved:
        region.successes, region.failures = region.successes + 1, 0
        region.best = batch_best
        region.center = _index_of(data, batch_best)
    else:
        region.successes, region.failures = 0, region.failures + 1
    if region.successes >= cfg.success_tol:
        region.length, region.successes = min(2 * region.length, cfg.length_max), 0
    elif region.failures >= failure_tol:
        region.length, region.failures = region.length / 2, 0
    if region.length >= cfg.length_min:
        return False
    return _restart(region, data, cfg, centers)


def _restart(region: _Region, data: _Data, cfg: BOConfig, centers: set[str]) -> bool:
    """A fresh region at the best molecule that has not been a centre yet."""
    order = torch.argsort(data.y, descending=True).tolist()
    fresh = next((i for i in order if data.smiles[i] not in centers), order[0])
    centers.add(data.smiles[fresh])
    region.length, region.center, region.best = cfg.length_init, fresh, float(data.y[fresh])
    region.successes = region.failures = region.stale = 0
    region.hypers = None
    return True


def _index_of(data: _Data, value: float) -> int:
    return int(torch.nonzero(data.y == value)[-1])


def _propose(data: _Data, region: _Region, dims: int, cfg: BOConfig, gen: torch.Generator, seed: int) -> torch.Tensor:
    """Candidates in the trust region, best first by the acquisition function."""
    center = data.x[region.center]
    idx = torch.cdist(data.x, center[None]).squeeze(1).argsort()[: cfg.max_train]
    y = _copula(data.y[idx]) if cfg.y_transform == "rank" else data.y[idx]
    warm = region.hypers if cfg.warm_start else None
    model = _fit_gp(data.x[idx], y, cfg.fit_iters if warm is None else cfg.warm_fit_iters, warm)
    if cfg.warm_start:
        region.hypers = _hypers(model)
    lengthscale = model.covar_module.lengthscale.detach().reshape(-1).double() if hasattr(model.covar_module, "lengthscale") else torch.ones(dims)
    # TuRBO's shape: sides in proportion to the lengthscales (geometric mean 1), here at most 4x from the
    # mean either way, so that no side is too thin for the decoder to change its output along it.
    weights = (lengthscale / lengthscale.log().mean().exp()).clamp(0.25, 4.0)
    lower = (center - weights * region.length / 2).clamp(0, 1)
    upper = (center + weights * region.length / 2).clamp(0, 1)
    cand = _candidates(center, lower, upper, cfg.n_candidates, gen, seed)
    n_rank = math.ceil(cfg.batch_size * cfg.oversample)
    if cfg.acquisition == "qlogei":
        with torch.random.fork_rng(), _exact_gp(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.manual_seed(seed)
            return _rank_logei(model, y.max(), cand, lower, upper, cfg.batch_size, n_rank)
    return cand[_thompson_order(model, cand, n_rank, seed)]


def _propose_molecules(searcher: _Searcher, region: _Region, cfg: BOConfig, gen: torch.Generator, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Distinct new molecules decoded from trust-region candidates, best first by a Tanimoto GP's Thompson samples."""
    data, molecules = searcher.data, searcher.molecules
    region.below_floor = 0
    center = data.x[region.center]
    lower, upper = (center - region.length / 2).clamp(0, 1), (center + region.length / 2).clamp(0, 1)
    cand = _candidates(center, lower, upper, cfg.n_candidates, gen, seed)
    first: dict[str, int] = {}  # each new molecule and the first candidate that decodes to it
    for i, s in enumerate(searcher.decode(cand)):
        if s and s not in searcher.oracle.records and s not in first:
            first[s] = i
    new = list(first)
    # Near a lead, most of the region decodes below the similarity floor. Those molecules would cost no
    # call, but ranked with the rest they filled the top of the list, and a batch charged only the few
    # feasible ones among them (a 200-call lead search took 200+ batches). They are dropped before ranking,
    # so a batch charges up to batch_size feasible molecules of all it decoded.
    if new:
        keep = searcher.oracle.meets_similarity(new, searcher._origins(cand[[first[s] for s in new]]))
        region.below_floor = len(new) - sum(keep)
        new = [s for s, k in zip(new, keep) if k]
    if not new:
        return cand[:0], []
    fps, y = molecules.nearest(data.smiles[region.center], cfg.max_train)
    model = _fit_gp(fps, _copula(y) if cfg.y_transform == "rank" else y, cfg.fit_iters, kernel=_tanimoto_kernel())
    cand_fps = torch.from_numpy(fingerprint_array(new, n_bits=_FP_BITS, n_jobs=1)).double()
    order = _thompson_order(model, cand_fps, min(math.ceil(cfg.batch_size * cfg.oversample), len(new)), seed).tolist()
    return cand[[first[new[i]] for i in order]], [new[i] for i in order]

