"""Property conditions for conditional sequence VAEs: names, normalisation, requests.

A conditional model (``molgen train --condition-on logp,qed,sa``) sees a
vector of molecular properties, computed with :data:`molgen.chem.PROPERTIES`
and standardised with the training set's mean and standard deviation. The
:class:`ConditionSpec` that holds those statistics is stored in the
checkpoint, so ``molgen sample --condition "logp=2.5,qed=0.8"`` needs nothing
else.

Properties a request leaves out are filled in from stored training vectors
whose requested properties are closest to the request (a nearest-neighbour
draw from the training distribution), so ``logp=4`` gets the SA and QED that
molecules with logP near 4 have, not the averages of all molecules.

Example::

    >>> import numpy as np
    >>> spec = ConditionSpec.fit(["logp", "qed"], np.array([[1.0, 0.5], [3.0, 0.9]]))
    >>> spec.parse("logp=2.5")
    {'logp': 2.5}
    >>> parse_property_names("logp, qed")
    ['logp', 'qed']

Unknown property names raise :class:`~molgen.errors.ConfigError`; requests
outside the training range are accepted with a :class:`ConditionWarning`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from molgen.config import ConfigMixin
from molgen.errors import ConfigError

__all__ = ["ConditionSpec", "ConditionWarning", "parse_property_names", "property_matrix"]

# Training vectors kept in the checkpoint for filling in unrequested properties.
_STORED_ROWS = 1000
# A request is matched against this many nearest stored vectors (at most 5% of them).
_NEIGHBOURS = 50


class ConditionWarning(UserWarning):
    """A requested condition lies outside the values the model was trained on."""


def _known() -> list[str]:
    from molgen.chem import PROPERTIES

    return sorted(PROPERTIES)


def parse_property_names(names: str | Sequence[str]) -> list[str]:
    """Validate a comma-separated list (or sequence) of property names from :data:`molgen.chem.PROPERTIES`."""
    items = [n.strip().lower() for n in (names.split(",") if isinstance(names, str) else names)]
    items = [n for n in items if n]
    if not items:
        raise ConfigError(f"no property names given; choose from {', '.join(_known())}")
    unknown = [n for n in items if n not in _known()]
    if unknown:
        raise ConfigError(f"unknown property {unknown[0]!r}; known properties: {', '.join(_known())}")
    if len(set(items)) != len(items):
        raise ConfigError(f"property names repeat in {', '.join(items)}")
    return items


def property_matrix(smiles: Sequence[str], names: Sequence[str], n_jobs: int | None = None, progress=None) -> np.ndarray:
    """Properties ``[N, len(names)]`` (float64) of ``smiles``; rows of invalid molecules are NaN.

    ``progress``: a progress handle advanced as molecules are done.
    """
    from molgen.chem import compute_properties

    if len(smiles) == 0:
        return np.zeros((0, len(names)))
    frame = compute_properties(list(smiles), list(names), n_jobs=n_jobs, progress=progress)
    return frame[list(names)].to_numpy(dtype=np.float64)


@dataclass
class ConditionSpec(ConfigMixin):
    """Which properties a conditional model sees, and the training statistics that normalise them."""

    names: list[str]
    mean: list[float]
    std: list[float]
    low: list[float]  # training minimum
    high: list[float]  # training maximum
    rows: list[list[float]] = field(default_factory=list)  # a random sample of training vectors (raw values)

    _config_label = "condition keys"

    def __post_init__(self) -> None:
        k = len(self.names)
        if k == 0 or any(len(v) != k for v in (self.mean, self.std, self.low, self.high)):
            raise ConfigError("a condition spec needs one mean, std, low and high per property name")
        if any(len(r) != k for r in self.rows):
            raise ConfigError("stored condition rows must have one value per property")

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def fit(cls, names: Sequence[str], values: np.ndarray, seed: int = 0) -> ConditionSpec:
        """Statistics of ``values`` ``[N, k]`` (NaN rows ignored)."""
        values = np.asarray(values, dtype=np.float64)
        ok = values[np.isfinite(values).all(1)]
        if len(ok) == 0:
            raise ConfigError("no molecule has finite values of the conditioning properties")
        std = ok.std(0)
        pick = np.random.default_rng(seed).permutation(len(ok))[:_STORED_ROWS]
        return cls(
            names=list(names),
            mean=[float(v) for v in ok.mean(0)],
            std=[float(v) if v > 1e-8 else 1.0 for v in std],
            low=[float(v) for v in ok.min(0)],
            high=[float(v) for v in ok.max(0)],
            rows=np.round(ok[np.sort(pick)], 5).tolist(),
        )

    def normalize(self, values: np.ndarray) -> np.ndarray:
        """Raw property values ``[N, k]`` -> standardised float32; NaN (invalid molecule) becomes the mean."""
        z = (np.asarray(values, dtype=np.float64) - np.array(self.mean)) / np.array(self.std)
        return np.nan_to_num(z, nan=0.0).astype(np.float32)

    def parse(self, request: str | Mapping[str, float]) -> dict[str, float]:
        """``"logp=2.5,qed=0.8"`` (or a mapping) -> ``{"logp": 2.5, "qed": 0.8}``, checked against this model."""
        if isinstance(request, str):
            pairs: list[tuple[str, str]] = []
            for item in (p.strip() for p in request.split(",")):
                if not item:
                    continue
                name, sep, value = item.partition("=")
                if not sep:
                    raise ConfigError(f"condition {item!r} is not NAME=VALUE; e.g. --condition \"logp=2.5,qed=0.8\"")
                pairs.append((name.strip().lower(), value.strip()))
        else:
            pairs = [(str(k).lower(), v) for k, v in request.items()]
        out: dict[str, float] = {}
        for name, value in pairs:
            if name not in _known():
                raise ConfigError(f"unknown property {name!r}; known properties: {', '.join(_known())}")
            if name not in self.names:
                raise ConfigError(f"this model is conditioned on {', '.join(self.names)}, not on {name!r}")
            if name in out:
                raise ConfigError(f"property {name!r} is requested twice")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"condition {name}={value!r} is not a number") from None
            if not math.isfinite(number):
                raise ConfigError(f"condition {name}={value} must be finite")
            out[name] = number
        if not out:
            raise ConfigError(f"empty condition; give NAME=VALUE pairs for {', '.join(self.names)}")
        return out

    def check_range(self, request: Mapping[str, float]) -> list[str]:
        """Messages for requested values outside the training range (also issued as :class:`ConditionWarning`)."""
        messages = []
        for name, value in request.items():
            j = self.names.index(name)
            if not self.low[j] <= value <= self.high[j]:
                messages.append(
                    f"condition {name}={value:g} is outside the training range [{self.low[j]:.3g}, {self.high[j]:.3g}]; "
                    "the model extrapolates and control will be poor"
                )
        for message in messages:
            warnings.warn(message, ConditionWarning, stacklevel=3)
        return messages

    def request_matrix(self, request: str | Mapping[str, float] | None, n: int, seed: int = 0) -> np.ndarray:
        """Raw property vectors ``[n, k]`` for a request; unrequested properties come from nearby training vectors.

        ``None`` draws whole vectors from the stored training sample (or uses
        the means if the checkpoint stores none), which samples the model's
        marginal distribution of molecules.
        """
        fixed = {} if request is None else self.parse(request)
        self.check_range(fixed)
        rng = np.random.default_rng(seed)
        if self.rows:
            stored = np.asarray(self.rows, dtype=np.float64)
            cols = [self.names.index(k) for k in fixed]
            if cols:
                target = np.array([fixed[self.names[c]] for c in cols])
                dist = (((stored[:, cols] - target) / np.array(self.std)[cols]) ** 2).sum(1)
                k = max(1, min(_NEIGHBOURS, len(stored) // 20))
                stored = stored[np.argsort(dist, kind="stable")[:k]]
            out = stored[rng.integers(0, len(stored), size=n)]
        else:
            out = np.tile(np.array(self.mean), (n, 1))
        for name, value in fixed.items():
            out[:, self.names.index(name)] = value
        return out
