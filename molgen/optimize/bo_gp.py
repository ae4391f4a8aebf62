"""The Gaussian-process surrogates of latent BO (BoTorch): fitting, Tanimoto kernel, Thompson sampling, LogEI."""

from __future__ import annotations

import functools
import math
import warnings

import torch

# The bo_* modules are one package split by concern; their _private helpers are shared among them only.
__all__ = []


def _thompson_order(model, x: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """``n`` distinct rows of ``x``, each the best of one joint posterior sample (seeded, global RNG untouched)."""
    with torch.random.fork_rng(), _exact_gp(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jitter added to near-singular covariances of close candidates
        torch.manual_seed(seed)
        samples = model.posterior(x).rsample(torch.Size([n])).squeeze(-1)  # [n, len(x)]
    return _distinct_argmax(samples)


@functools.cache
def _tanimoto_kernel_class():
    from gpytorch.kernels import Kernel

    class TanimotoKernel(Kernel):
        """k(a, b) = <a, b> / (|a|^2 + |b|^2 - <a, b>) on bit (or count) vectors; no hyperparameters.

        Written here rather than taken from GAUCHE, whose package requires jupyterlab and seaborn.
        """

        has_lengthscale = False
        is_stationary = False

        def forward(self, x1: torch.Tensor, x2: torch.Tensor, diag: bool = False, **params) -> torch.Tensor:
            if diag:
                dot = (x1 * x2).sum(-1)
                return dot / ((x1 * x1).sum(-1) + (x2 * x2).sum(-1) - dot).clamp_min(1e-9)
            dot = x1 @ x2.transpose(-1, -2)
            norms = (x1 * x1).sum(-1, keepdim=True) + (x2 * x2).sum(-1, keepdim=True).transpose(-1, -2)
            return dot / (norms - dot).clamp_min(1e-9)

    return TanimotoKernel


def _tanimoto_kernel():
    from gpytorch.kernels import ScaleKernel

    return ScaleKernel(_tanimoto_kernel_class()())


def _copula(y: torch.Tensor) -> torch.Tensor:
    """Normal quantiles of the ranks of ``y`` (ties share their mean rank): order kept, scale dropped."""
    values, inverse = torch.unique(y, return_inverse=True)
    order = torch.argsort(y, stable=True)
    ranks = torch.empty_like(y)
    ranks[order] = torch.arange(1, len(y) + 1, dtype=y.dtype)
    mean_rank = torch.zeros(len(values), dtype=y.dtype).index_add_(0, inverse, ranks) / torch.bincount(inverse, minlength=len(values))
    return torch.special.ndtri((mean_rank[inverse] - 0.5) / len(y))


_HYPER_PREFIXES = ("covar_module.", "likelihood.", "mean_module.")


def _hypers(model) -> dict:
    """The fitted hyperparameters of a GP (kernel, noise, mean), not its data or outcome transform."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(_HYPER_PREFIXES)}


def _fit_gp(x: torch.Tensor, y: torch.Tensor, iters: int, init: dict | None = None, kernel=None):
    from botorch.exceptions import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    with warnings.catch_warnings(), _exact_gp():
        # botorch's advisory warnings: input scaling, optimizer status, and (at construction) targets
        # with zero spread, which every batch of a flat objective has (valsartan_smarts: 452 of them)
        warnings.simplefilter("ignore")
        model = SingleTaskGP(x, y[:, None], covar_module=kernel)  # standardises y; default kernel: dimension-scaled lengthscale prior
        if init is not None:
            model.load_state_dict(init, strict=False)
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        try:
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": iters}})
        except ModelFittingError:
            pass  # keep the prior-mode hyperparameters; the region logic still works
    return model.eval()


def _exact_gp():
    import gpytorch

    return gpytorch.settings.max_cholesky_size(10**6)


def _candidates(center: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, n: int, gen: torch.Generator, seed: int) -> torch.Tensor:
    """TuRBO's candidates: Sobol points in the box, each changing a random subset of about 20 coordinates."""
    dims = len(center)
    sobol = torch.quasirandom.SobolEngine(dims, scramble=True, seed=seed).draw(n).double()
    points = lower + (upper - lower) * sobol
    mask = torch.rand(n, dims, generator=gen, dtype=torch.float64) <= min(1.0, 20.0 / dims)
    empty = ~mask.any(1)
    mask[empty, torch.randint(dims, (int(empty.sum()),), generator=gen)] = True
    return torch.where(mask, points, center.expand(n, dims))


def _distinct_argmax(samples: torch.Tensor) -> torch.Tensor:
    """Per posterior sample, its best candidate not yet taken: a ranking of distinct candidates."""
    taken = torch.zeros(samples.shape[1], dtype=torch.bool)
    order = []
    for row in samples:
        best = int(row.masked_fill(taken, -math.inf).argmax())
        taken[best] = True
        order.append(best)
    return torch.tensor(order, dtype=torch.long)


def _rank_logei(model, best_f: torch.Tensor, cand: torch.Tensor, lower, upper, q: int, n_rank: int) -> torch.Tensor:
    from botorch.acquisition.analytic import LogExpectedImprovement
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.optim import optimize_acqf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch, _ = optimize_acqf(
            qLogExpectedImprovement(model, best_f=best_f), torch.stack([lower, upper]), q=q, num_restarts=2, raw_samples=128,
            sequential=True, options={"maxiter": 50},
        )
    with torch.no_grad():
        score = LogExpectedImprovement(model, best_f=best_f)(cand[:, None, :])
    rest = cand[score.argsort(descending=True)[: max(0, n_rank - q)]]
    return torch.cat([batch.detach(), rest])

