"""Desirability transforms (raw score -> [0, 1]) and their weighted aggregation.

The transforms follow the usage of multi-parameter optimization in drug design
(Harrington's desirability functions, as REINVENT's scoring components use them),
with parameters that read in the units of the raw score:

* ``sigmoid`` -- rises from about 0.05 at ``low`` to about 0.95 at ``high``
  (``steepness`` 3 gives those values; larger is sharper);
* ``reverse_sigmoid`` -- falls from about 0.95 at ``low`` to 0.05 at ``high``;
* ``double_sigmoid`` -- a window: about 0.5 at ``low`` and at ``high``, near 1
  between them, with transitions ``width`` wide (default a quarter of the window);
* ``step`` -- 1 inside ``[low, high]`` (either bound may be left out), else 0;
* ``none`` -- the raw value, for scores already in [0, 1].

Aggregation is the weighted arithmetic mean ``sum(w d) / sum(w)`` or the
weighted geometric mean ``prod(d ** w) ** (1 / sum(w))`` (one zero desirability
vetoes the molecule).

    >>> t = Transform("sigmoid", low=0.0, high=10.0)
    >>> [round(float(v), 3) for v in t.apply([0.0, 5.0, 10.0])]
    [0.047, 0.5, 0.953]
    >>> round(float(aggregate([[1.0, 0.25]], [1, 1], "geometric")[0]), 3)
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from molgen.errors import ConfigError

__all__ = ["Transform", "TransformKind", "aggregate", "AGGREGATIONS"]

TransformKind = Literal["none", "sigmoid", "reverse_sigmoid", "double_sigmoid", "step"]
AGGREGATIONS = ("arithmetic", "geometric")


@dataclass
class Transform:
    """One desirability transform; see the module docstring for the meaning of each parameter."""

    kind: TransformKind = "none"
    low: float | None = None
    high: float | None = None
    steepness: float = 3.0
    width: float | None = None

    def __post_init__(self) -> None:
        finite = all(v is None or math.isfinite(v) for v in (self.low, self.high, self.width))
        if not finite or not (math.isfinite(self.steepness) and self.steepness > 0):
            raise ConfigError("transform parameters must be finite numbers and steepness > 0")
        if self.kind in ("sigmoid", "reverse_sigmoid", "double_sigmoid"):
            if self.low is None or self.high is None:
                raise ConfigError(f"a {self.kind} transform needs both low and high")
            if not self.low < self.high:
                raise ConfigError(f"{self.kind} needs low < high, got low={self.low:g}, high={self.high:g}")
        if self.kind == "step":
            if self.low is None and self.high is None:
                raise ConfigError("a step transform needs low, high or both")
            if self.low is not None and self.high is not None and self.low > self.high:
                raise ConfigError(f"step needs low <= high, got low={self.low:g}, high={self.high:g}")
        if self.width is not None and (self.kind != "double_sigmoid" or self.width <= 0):
            raise ConfigError("width applies to double_sigmoid only and must be > 0")
        if self.kind == "none" and (self.low is not None or self.high is not None):
            raise ConfigError("transform 'none' takes no low/high; choose sigmoid, reverse_sigmoid, double_sigmoid or step")

    def apply(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        """Desirabilities in [0, 1] (NaN stays NaN); ``none`` passes the raw values through."""
        x = np.asarray(raw, dtype=float)
        if self.kind == "none":
            return x.copy()
        if self.kind == "sigmoid":
            return _rise(x, self.low, self.high, self.steepness)
        if self.kind == "reverse_sigmoid":
            return 1.0 - _rise(x, self.low, self.high, self.steepness)
        if self.kind == "double_sigmoid":
            w = self.width if self.width is not None else (self.high - self.low) / 4
            up = _rise(x, self.low - w / 2, self.low + w / 2, self.steepness)
            down = 1.0 - _rise(x, self.high - w / 2, self.high + w / 2, self.steepness)
            return up * down
        low = -np.inf if self.low is None else self.low
        high = np.inf if self.high is None else self.high
        return np.where(np.isnan(x), np.nan, ((x >= low) & (x <= high)).astype(float))


def _rise(x: np.ndarray, low: float, high: float, steepness: float) -> np.ndarray:
    centre, half = (low + high) / 2, (high - low) / 2
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-steepness * (x - centre) / half))


def aggregate(desirabilities: np.ndarray | Sequence[Sequence[float]], weights: Sequence[float], method: str = "geometric") -> np.ndarray:
    """Per row of ``desirabilities`` [n, k], the weighted mean of its k values (NaN if any is NaN).

    The geometric mean needs values in [0, 1] (negative ones are clipped to 0).
    """
    d = np.asarray(desirabilities, dtype=float).reshape(-1, len(weights))
    w = np.asarray(weights, dtype=float)
    if method not in AGGREGATIONS:
        raise ConfigError(f"unknown aggregation {method!r}; use {' or '.join(AGGREGATIONS)}")
    if not (np.all(w >= 0) and w.sum() > 0):
        raise ConfigError("component weights must be >= 0 with at least one > 0")
    if method == "arithmetic":
        return d @ w / w.sum()
    with np.errstate(divide="ignore"):
        logs = np.log(np.clip(d, 0.0, None))
    logs = np.where(w > 0, logs, 0.0)  # a zero-weight component neither vetoes nor counts
    return np.exp(logs @ w / w.sum())
