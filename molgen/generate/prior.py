"""Fitted latent priors: draw z from a Gaussian mixture fitted to the codes of real molecules.

A VAE trained with a KL weight below 1 (the default model uses 0.5) leaves the
aggregate posterior ``q(z) = E_x q(z|x)`` unlike ``N(0, I)``: its codes fill a
smaller, non-spherical region, and prior samples that fall outside it decode to
molecules unlike the training data. Fitting a density to the codes of training
molecules after training and sampling from it instead ("ex-post density
estimation", Ghosh et al. 2020, *From Variational to Deterministic
Autoencoders*; the two-stage VAE of Dai & Wipf 2019 is the same idea with a
second VAE; pythae's ``GaussianMixtureSampler``) closes that gap at no
training cost. The mixture is fitted by scikit-learn's EM (full covariances)
and stored as plain tensors in the model's checkpoint, so loading it runs no
code.

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> vae = MoleculeVAE.load()                                      # doctest: +SKIP
    >>> vae.latent_prior = fit_latent_prior(vae, smiles, components=16)  # doctest: +SKIP
    >>> vae.sample(100, prior="fitted")                               # doctest: +SKIP

or, as ``molgen fit-prior`` does it (the model's training set, or the embedded
MOSES molecules, when ``smiles`` is None)::

    >>> fit_model_prior(vae, None, components=16).save("with_prior.safetensors")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from molgen.errors import CheckpointError, ConfigError, DataError

__all__ = ["LatentPrior", "fit_latent_prior", "fit_posterior_prior", "PRIOR_KINDS", "fit_model_prior", "latent_sampler", "uses_fitted_prior", "PriorChoice", "PRIOR_CHOICES", "TENSOR_PREFIX"]

PriorChoice = Literal["auto", "standard", "fitted"]
PRIOR_CHOICES = ("auto", "standard", "fitted")
#: What ``molgen fit-prior --kind`` fits: a few full-covariance Gaussians, or the stored posteriors of training molecules.
PRIOR_KINDS = ("gmm", "posterior")
#: Checkpoint tensors whose names start with this belong to the fitted prior, not the network.
TENSOR_PREFIX = "latent_prior."


@dataclass
class LatentPrior:
    """A Gaussian mixture over latent vectors: weights ``[K]``, means ``[K, D]`` and per-component scales.

    ``scale_tril`` is either Cholesky factors ``[K, D, D]`` (full covariances,
    :func:`fit_latent_prior`) or per-dimension standard deviations ``[K, D]``
    (diagonal covariances, :func:`fit_posterior_prior`: one component per
    stored training molecule, thousands of them, for which full factors would
    not fit in a checkpoint).
    """

    weights: torch.Tensor
    means: torch.Tensor
    scale_tril: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k, d = self.means.shape if self.means.ndim == 2 else (-1, -1)
        if self.weights.shape != (k,) or self.scale_tril.shape not in ((k, d, d), (k, d)) or k < 1:
            raise CheckpointError(
                f"latent prior tensors have inconsistent shapes {list(self.weights.shape)}, {list(self.means.shape)}, "
                f"{list(self.scale_tril.shape)}; re-fit it with molgen fit-prior"
            )
        if not (torch.isfinite(self.weights).all() and (self.weights >= 0).all() and self.weights.sum() > 0):
            raise CheckpointError("latent prior weights must be finite and non-negative; re-fit it with molgen fit-prior")
        if self.diagonal and not (torch.isfinite(self.scale_tril).all() and (self.scale_tril > 0).all()):
            raise CheckpointError("latent prior scales must be finite and positive; re-fit it with molgen fit-prior")

    @property
    def latent_dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def components(self) -> int:
        return int(self.means.shape[0])

    @property
    def diagonal(self) -> bool:
        """Whether the components have diagonal covariances (``scale_tril`` holds standard deviations ``[K, D]``)."""
        return self.scale_tril.ndim == 2

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` latent vectors ``[n, D]`` (float32, CPU); the same generator state gives the same vectors."""
        which = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        if self.diagonal:
            return (self.means[which].double() + eps * self.scale_tril[which].double()).float()
        z = torch.empty(n, self.latent_dim, dtype=torch.float64)
        for k in which.unique().tolist():
            rows = which == k
            z[rows] = self.means[k].double() + eps[rows] @ self.scale_tril[k].double().T
        return z.float()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Log density of each row of ``z`` under the mixture."""
        log_w = torch.log(self.weights.double() / self.weights.double().sum())
        z = z.double()
        if self.diagonal:
            # sum_d ((z_d - m_kd) / s_kd)^2 expanded into matrix products: [n, K] without an [n, K, D] tensor.
            m, inv_var = self.means.double(), self.scale_tril.double().pow(-2)
            maha = z.pow(2) @ inv_var.T - 2 * z @ (m * inv_var).T + (m.pow(2) * inv_var).sum(1)
            log_norm = -self.scale_tril.double().log().sum(1) - 0.5 * self.latent_dim * np.log(2 * np.pi)
            return torch.logsumexp(log_w + log_norm - 0.5 * maha, dim=1)
        comp = torch.distributions.MultivariateNormal(self.means.double(), scale_tril=self.scale_tril.double())
        mix = torch.distributions.Categorical(logits=log_w)
        return torch.distributions.MixtureSameFamily(mix, comp).log_prob(z)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {
            TENSOR_PREFIX + "weights": self.weights.float().contiguous(),
            TENSOR_PREFIX + "means": self.means.float().contiguous(),
            TENSOR_PREFIX + ("scale_diag" if self.diagonal else "scale_tril"): self.scale_tril.float().contiguous(),
        }

    @classmethod
    def pop_from(cls, tensors: dict[str, torch.Tensor], info: dict[str, Any] | None) -> LatentPrior | None:
        """Remove the prior's tensors from a checkpoint's tensors and build it (``None`` if there is none)."""
        names = [k for k in tensors if k.startswith(TENSOR_PREFIX)]
        if not names:
            return None
        parts = {k[len(TENSOR_PREFIX) :]: tensors.pop(k) for k in names}
        scale = [k for k in ("scale_tril", "scale_diag") if k in parts]
        if len(scale) != 1 or set(parts) != {"weights", "means", scale[0]}:
            raise CheckpointError(f"latent prior tensors {sorted(parts)} are incomplete; re-fit it with molgen fit-prior")
        return cls(parts["weights"], parts["means"], parts[scale[0]], dict(info or {}))


def fit_latent_prior(
    vae,
    smiles: list[str],
    components: int = 16,
    seed: int = 0,
    max_iter: int = 200,
    reg_covar: float = 1e-4,
    show_progress: bool = False,
) -> LatentPrior:
    """Fit a ``components``-Gaussian mixture to the posterior means of ``smiles`` under ``vae``.

    Posterior means, not samples, are fitted: with the default KL weight the
    per-molecule posterior noise is what made prior samples unlike the data,
    and decoding from a mean already samples every token. ``reg_covar`` is
    added to each covariance's diagonal (in latent units squared), which keeps
    dimensions the encoder does not use from collapsing to zero variance.
    ``show_progress`` prints a progress line (rate, ETA) for the encoding and
    for the EM iterations (the ETA assumes all ``max_iter``; EM usually stops sooner).
    """
    from molgen.utils.progress import progress_bar

    if components < 1:
        raise ConfigError(f"components must be >= 1, not {components}")
    with progress_bar(len(smiles), "encoding", show_progress, "mol") as bar:
        z, kept = vae.encode(list(smiles), progress=bar)
    need = max(10 * components, 2)
    if len(z) < need:
        raise DataError(
            f"{len(z)} encodable molecules are too few to fit {components} Gaussian(s) in {z.shape[1]} dimensions; "
            f"give at least {need} (thousands are better) or fewer --components"
        )
    gmm = _mixture(components, reg_covar, max_iter, seed)
    codes = z.astype(np.float64)
    with progress_bar(max_iter, "EM", show_progress, "iter") as bar:
        gmm.progress = bar
        gmm.fit(codes)
        del gmm.progress
    info = dict(components=components, molecules=len(z), seed=seed, reg_covar=reg_covar, converged=bool(gmm.converged_))
    info["mean_log_likelihood"] = float(gmm.score(codes))
    return LatentPrior(
        torch.from_numpy(gmm.weights_).float(),
        torch.from_numpy(gmm.means_).float(),
        torch.from_numpy(np.linalg.cholesky(gmm.covariances_)).float(),
        info,
    )


def fit_posterior_prior(
    vae,
    smiles: list[str],
    components: int = 8192,
    noise: float = 1.0,
    seed: int = 0,
    show_progress: bool = False,
) -> LatentPrior:
    """An aggregate-posterior prior: one diagonal Gaussian per training molecule, ``components`` of them.

    The aggregate posterior ``q(z) = (1/N) sum_i q(z | x_i)`` is, by
    construction, where the decoder was trained; drawing from a stored sample of
    it (Tomczak & Welling's VampPrior keeps pseudo-inputs instead, Ghosh et
    al. 2020 fit a density to it) keeps samples on that region even when the
    codes lie on a curved, clustered set that a few full Gaussians bridge with
    holes (the drug-like model: FCD 10.2 to its held-out split from a
    16-Gaussian mixture, 3.0 from its posteriors). ``components`` molecules are
    drawn at random from ``smiles``; each contributes its posterior mean and its
    posterior standard deviations times ``noise``. ``noise`` above 1 moves
    samples further from the stored molecules: more novel, less close to the
    data (``molgen tune-sampling`` then picks the temperature under a novelty
    floor).
    """
    from molgen.utils.progress import progress_bar

    if components < 1:
        raise ConfigError(f"components must be >= 1, not {components}")
    if not noise > 0:
        raise ConfigError(f"noise must be > 0, not {noise}")
    smiles = list(smiles)
    if len(smiles) > components:
        keep = np.sort(np.random.default_rng(seed).choice(len(smiles), components, replace=False))
        smiles = [smiles[i] for i in keep]
    with progress_bar(len(smiles), "encoding", show_progress, "mol") as bar:
        mu, logvar, _ = vae.posterior(smiles, progress=bar)
    if len(mu) < min(components, 2):
        raise DataError(f"{len(mu)} encodable molecule(s) are too few for a posterior prior; give at least {min(components, 2)}")
    scale = logvar.mul(0.5).exp().mul(noise).clamp_min(1e-6)
    info = dict(kind="posterior", components=len(mu), molecules=len(mu), seed=seed, noise=noise)
    prior = LatentPrior(torch.full((len(mu),), 1.0 / len(mu)), mu, scale, info)
    prior.info["mean_log_likelihood"] = float(prior.log_prob(mu).mean())
    return prior


def _mixture(components: int, reg_covar: float, max_iter: int, seed: int):
    """A full-covariance ``GaussianMixture`` that advances ``self.progress`` once per EM iteration.

    scikit-learn has no callback; its ``_m_step`` runs once per iteration (and
    not in the initialisation), so counting there reports progress without
    touching the fit itself.
    """
    from sklearn.mixture import GaussianMixture

    class _CountingMixture(GaussianMixture):
        def _m_step(self, *args, **kwargs):  # its signature varies between scikit-learn versions
            super()._m_step(*args, **kwargs)
            self.progress.advance(1)

    return _CountingMixture(components, covariance_type="full", reg_covar=reg_covar, max_iter=max_iter, random_state=seed)


def uses_fitted_prior(vae, prior: str = "auto") -> bool:
    """Whether sampling ``vae`` with this prior choice draws from its fitted prior.

    ``"standard"`` draws z ~ N(0, I); ``"fitted"`` draws from the mixture stored
    with the model; ``"auto"`` uses the fitted one when the model has it.
    """
    if prior not in PRIOR_CHOICES:
        raise ConfigError(f"unknown prior {prior!r}; use one of {', '.join(PRIOR_CHOICES)}")
    if prior == "fitted" and vae.latent_prior is None:
        raise ConfigError("this model has no fitted latent prior; add one with `molgen fit-prior` or use --prior standard")
    return prior != "standard" and vae.latent_prior is not None


def latent_sampler(vae, prior: str = "auto"):
    """``draw(n, generator) -> z [n, D]`` for a prior choice (see :func:`uses_fitted_prior`)."""
    if uses_fitted_prior(vae, prior):
        return vae.latent_prior.sample
    dim = vae.config.latent_dim
    return lambda n, generator: torch.randn(n, dim, generator=generator)


def fit_model_prior(
    vae,
    smiles: list[str] | None,
    components: int = 16,
    limit: int = 50000,
    seed: int = 0,
    show_progress: bool = False,
    on_note=None,
    kind: str = "gmm",
    noise: float = 1.0,
):
    """``vae`` with a prior fitted to ``smiles`` (None: its training set if available, else the embedded
    MOSES molecules), at most ``limit`` of them chosen at random (0: all).

    ``kind`` ``"gmm"``: ``components`` full Gaussians fitted by EM
    (:func:`fit_latent_prior`); ``"posterior"``: the posteriors of
    ``components`` of the molecules, widened by ``noise`` (:func:`fit_posterior_prior`).

    A temperature tuned for the old prior no longer fits: it is dropped from
    the model's metadata (``vae.meta["sampling"]``), with a warning.
    ``on_note`` receives a line naming the molecules used when ``smiles`` is None.
    """
    import warnings

    from molgen.datasets import default_training_smiles
    from molgen.vae.train_set import training_smiles

    if limit < 0:
        raise ConfigError("limit must be >= 0 (0: all molecules)")
    if kind not in PRIOR_KINDS:
        raise ConfigError(f"unknown prior kind {kind!r}; use one of {', '.join(PRIOR_KINDS)}")
    say = on_note or (lambda message: None)
    if smiles is None:
        smiles = training_smiles(vae)
        if smiles is not None:
            say(f"fitting to the model's training set ({len(smiles):,} molecules)")
    if smiles is None:
        smiles = default_training_smiles()
        say(f"using the embedded default data: {len(smiles):,} MOSES training molecules")
    if limit and len(smiles) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(smiles), limit, replace=False))
        smiles = [smiles[i] for i in keep]
    if kind == "posterior":
        vae.latent_prior = fit_posterior_prior(vae, smiles, components=components, noise=noise, seed=seed, show_progress=show_progress)
    else:
        vae.latent_prior = fit_latent_prior(vae, smiles, components=components, seed=seed, show_progress=show_progress)
    if vae.meta.pop("sampling", None) is not None:
        warnings.warn("the model's tuned temperature was chosen for its old prior and is dropped; run molgen tune-sampling again", stacklevel=2)
    return vae
