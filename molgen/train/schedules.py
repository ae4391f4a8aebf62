"""KL-weight (beta) schedules.

Bowman et al. 2016 anneal the KL weight linearly from 0 so the decoder learns
to use z before the KL term pushes the posterior onto the prior; Fu et al.
2019 ("Cyclical annealing schedule") repeat that ramp several times, which
gives better-used latent codes at the same final beta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from molgen.errors import ConfigError

__all__ = ["KLSchedule"]


@dataclass
class KLSchedule:
    """beta(step): ``constant``, ``linear`` (0 -> beta over ``warmup_steps`` after ``start_step``),
    or ``cyclical`` (ramp over ``ratio`` of each ``period`` steps, then hold)."""

    kind: Literal["constant", "linear", "cyclical"] = "linear"
    beta: float = 1.0
    warmup_steps: int = 10_000
    start_step: int = 0
    period: int = 10_000
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "linear", "cyclical"):
            raise ConfigError(f"unknown KL schedule {self.kind!r}; use constant, linear or cyclical")
        if self.beta < 0:
            raise ConfigError("beta must be >= 0")
        if self.warmup_steps < 0 or self.period < 1 or not 0 < self.ratio <= 1:
            raise ConfigError("KL schedule needs warmup_steps >= 0, period >= 1 and 0 < ratio <= 1")

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.beta
        s = step - self.start_step
        if s < 0:
            return 0.0
        if self.kind == "linear":
            return self.beta if self.warmup_steps == 0 else self.beta * min(1.0, s / self.warmup_steps)
        phase = (s % self.period) / (self.period * self.ratio)
        return self.beta * min(1.0, phase)
