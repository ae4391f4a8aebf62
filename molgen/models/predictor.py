"""Property predictor on latent vectors: a small ensemble of MLPs.

Maps a VAE latent vector ``z`` to one or more molecular properties, as the
property networks of Gomez-Bombarelli et al. 2018 and LIMO (Eckmann et al.
2022, "LIMO: Latent Inceptionism for Targeted Molecule Generation") do; its
gradient with respect to ``z`` drives latent optimization. An ensemble of
independently initialised members (Lakshminarayanan et al. 2017, "Simple and
scalable predictive uncertainty estimation using deep ensembles") gives a
spread that flags latent regions the predictor has not seen.

The members run together as batched matrix products (weights
``[members, in, out]``), so an ensemble costs about one wide MLP. Targets are
standardised inside the model (``y_mean``/``y_std`` buffers), so outputs are in
the properties' own units.

Example::

    >>> import torch
    >>> model = LatentPredictor(LatentPredictorConfig(latent_dim=8, names=["qed"], members=3))
    >>> mean, std = model.predict(torch.zeros(2, 8))
    >>> mean.shape, std.shape
    (torch.Size([2, 1]), torch.Size([2, 1]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from molgen.config import ConfigMixin
from molgen.errors import ConfigError

__all__ = ["LatentPredictor", "LatentPredictorConfig"]


@dataclass
class LatentPredictorConfig(ConfigMixin):
    """Architecture of a :class:`LatentPredictor`; unknown keys are rejected by :meth:`from_dict`."""

    latent_dim: int
    names: list[str] = field(default_factory=list)  # one output per property
    hidden: int = 256
    layers: int = 2
    members: int = 5
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not self.names:
            raise ConfigError("a latent predictor needs at least one target property")
        if len(set(self.names)) != len(self.names):
            raise ConfigError(f"duplicate target names in {self.names}")
        for name in ("latent_dim", "hidden", "layers", "members"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"predictor {name} must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("predictor dropout must be in [0, 1)")


class _EnsembleLinear(nn.Module):
    """``members`` independent linear layers applied to ``[members, batch, in]``."""

    def __init__(self, members: int, d_in: int, d_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_in)  # PyTorch's nn.Linear initialisation, per member
        self.weight = nn.Parameter(torch.empty(members, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class LatentPredictor(nn.Module):
    """Ensemble MLP ``z [B, D] -> properties``; :meth:`forward` gives every member's standardised output."""

    def __init__(self, config: LatentPredictorConfig) -> None:
        super().__init__()
        self.config = c = config
        dims = [c.latent_dim] + [c.hidden] * c.layers + [len(c.names)]
        self.linears = nn.ModuleList(_EnsembleLinear(c.members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = nn.SiLU()
        self.drop = nn.Dropout(c.dropout)
        self.register_buffer("y_mean", torch.zeros(len(c.names)))
        self.register_buffer("y_std", torch.ones(len(c.names)))

    @property
    def names(self) -> list[str]:
        return list(self.config.names)

    def set_target_scale(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.y_mean.copy_(mean)
        self.y_std.copy_(std.clamp(min=1e-8))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised predictions of every member, ``[members, B, P]``."""
        x = z.unsqueeze(0).expand(self.config.members, -1, -1)
        for i, layer in enumerate(self.linears):
            x = layer(x)
            if i < len(self.linears) - 1:
                x = self.drop(self.act(x))
        return x

    def members_output(self, z: torch.Tensor) -> torch.Tensor:
        """Every member's predictions in the properties' units, ``[members, B, P]`` (differentiable)."""
        return self.forward(z) * self.y_std + self.y_mean

    def predict(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ensemble mean and standard deviation ``[B, P]`` in the properties' units."""
        out = self.members_output(z)
        std = out.std(0, unbiased=False) if out.size(0) > 1 else torch.zeros_like(out[0])
        return out.mean(0), std

    def as_dict(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Member outputs by property name, each ``[members, B]`` (what objectives' surrogates consume)."""
        out = self.members_output(z)
        return {name: out[..., j] for j, name in enumerate(self.config.names)}
