"""Deterministic train/validation split."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from molgen.errors import ConfigError

__all__ = ["train_val_split"]

T = TypeVar("T")


def train_val_split(items: Sequence[T], val_fraction: float = 0.05, seed: int = 0) -> tuple[list[T], list[T]]:
    """Split ``items`` into ``(train, val)`` at random with a fixed seed.

    The validation part has ``round(len(items) * val_fraction)`` items, at
    least one when ``val_fraction > 0`` and there are two or more items, and
    never all of them. Both parts keep the input order, and the same
    ``(len(items), val_fraction, seed)`` always selects the same positions.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}; use e.g. 0.05")
    n = len(items)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.default_rng(seed).permutation(n)[:n_val]] = True
    train = [items[i] for i in np.flatnonzero(~is_val)]
    val = [items[i] for i in np.flatnonzero(is_val)]
    return train, val
