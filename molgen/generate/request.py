"""What to sample: one typed request for every way molgen draws molecules from a model.

A :class:`SampleRequest` holds the number of molecules, how each token is
chosen (temperature, top-k, top-p or greedy), where the latent codes come
from (``prior``), what to ask a conditional model for (``condition``,
``guidance``), property steering (:class:`Steering`), core-keeping and
near-lead design (:class:`Design`), and how the run is cut (batch size,
shard, workers). It is a :class:`~molgen.config.ConfigMixin`, so a TOML file
(``molgen sample --config configs/sample.toml``) and Python build the same
thing; every value is checked when the request is made.

Example::

    >>> SampleRequest(n=100, temperature=0.8, seed=1).decode_options(1.0).temperature
    0.8
    >>> SampleRequest(n=10, steering=Steering(candidates=4))
    Traceback (most recent call last):
    ...
    molgen.errors.ConfigError: --steer-candidates above 1 needs --steer: a steering predictor chooses among the candidates
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional, Union

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions
from molgen.generate.guidance import check_guidance
from molgen.generate.prior import PRIOR_CHOICES, PriorChoice
from molgen.utils.shards import ShardSpec, parse_shard

__all__ = ["SampleRequest", "Steering", "Design"]


@dataclass
class Steering(ConfigMixin):
    """Steer every decoding step towards ``condition`` with a prefix property predictor (FUDGE).

    ``predictor``: the file ``molgen fit-steering`` wrote (Python callers may
    pass a loaded :class:`~molgen.generate.steering.PrefixPropertyPredictor`);
    ``None`` turns steering off. ``strength``: weight of the predictor's
    log-likelihood in each step. ``candidates``: decode K steered molecules per
    sample and keep the one the predictor finds most likely to meet the request.
    """

    predictor: Optional[Path] = None
    strength: float = 1.0
    candidates: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength) and self.strength >= 0):
            raise ConfigError(f"steering strength must be a finite number >= 0, not {self.strength}")
        k = self.candidates
        if isinstance(k, bool) or not isinstance(k, (int, float)) or k < 1 or int(k) != k:
            raise ConfigError(f"steer_candidates must be a whole number >= 1, not {k}")
        self.candidates = int(k)
        if self.candidates > 1 and self.predictor is None:
            raise ConfigError("--steer-candidates above 1 needs --steer: a steering predictor chooses among the candidates")

    @property
    def active(self) -> bool:
        return self.predictor is not None


@dataclass
class Design(ConfigMixin):
    """Sample molecules that keep a core (``substructure``: SMARTS) or lie near leads (``near``: SMILES).

    ``seeds``: molecules to start core sampling from (besides training molecules
    with the core); ``radius``: how far from a lead's code, in units of the
    training codes' spread; ``similarity``: the Tanimoto range to keep,
    ``"LOW..HIGH"`` or a minimum. With either, ``n`` counts distinct molecules.
    """

    substructure: list[str] = field(default_factory=list)
    near: list[str] = field(default_factory=list)
    seeds: Optional[list[str]] = None
    radius: Optional[float] = None
    similarity: Optional[str] = None

    def __post_init__(self) -> None:
        if self.seeds is not None and not self.substructure:
            raise ConfigError("core seeds (--core-seeds) apply with a substructure (--substructure SMARTS)")
        if not self.near and (self.radius is not None or self.similarity is not None):
            raise ConfigError("--radius and --similarity apply with --near SMILES or --near-file")

    @property
    def active(self) -> bool:
        return bool(self.substructure or self.near)


@dataclass
class SampleRequest(ConfigMixin):
    """How many molecules to draw from a model, and how (see the module docstring)."""

    n: int = 1000
    seed: int = 0
    temperature: Optional[float] = None  # None: the model's tuned temperature (molgen tune-sampling), else 1
    top_k: int = 0
    top_p: float = 1.0
    greedy: bool = False
    prior: PriorChoice = "auto"
    condition: Optional[Union[str, dict[str, float]]] = None
    guidance: float = 1.0
    steering: Steering = field(default_factory=Steering)
    design: Design = field(default_factory=Design)
    precision: str = "auto"  # auto, fp32, bf16 or fp16 (CUDA); checked by DecodeOptions
    batch_size: int = 1024
    chunk_size: int = 16384
    n_jobs: Optional[int] = None
    unique: bool = False
    properties: bool = True
    shard: Optional[str] = None

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 0:
            raise ConfigError(f"number of samples must be a whole number >= 0, not {self.n}")
        if self.batch_size < 1 or self.chunk_size < 1:
            raise ConfigError("batch_size and chunk_size must be >= 1")
        if self.prior not in PRIOR_CHOICES:
            raise ConfigError(f"unknown prior {self.prior!r}; use one of {', '.join(PRIOR_CHOICES)}")
        check_guidance(self.guidance)
        if self.steering.active and self.condition is None:
            raise ConfigError('--steer needs a property request, e.g. --condition "logp=2.5"')
        if self.shard is not None:
            parse_shard(self.shard)
        self.decode_options(1.0)  # temperature, top-k, top-p and precision are checked here, not at the first batch

    def decode_options(self, default_temperature: float) -> DecodeOptions:
        """How each token is chosen; ``default_temperature`` stands in for ``temperature=None``."""
        temperature = default_temperature if self.temperature is None else self.temperature
        strategy = "greedy" if self.greedy else "sample"
        return DecodeOptions(strategy=strategy, temperature=temperature, top_k=self.top_k, top_p=self.top_p, precision=self.precision)

    @property
    def shard_spec(self) -> ShardSpec | None:
        return None if self.shard is None else parse_shard(self.shard)

    def local(self) -> SampleRequest:
        """The part this process draws: for a shard, its share of ``n`` with the shard's seed; else itself."""
        spec = self.shard_spec
        if spec is None:
            return self
        return replace(self, n=spec.size(self.n), seed=spec.seed(self.seed), shard=None)
