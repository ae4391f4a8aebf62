"""Keep a core: sample molecules that contain given substructures (SMARTS), cheaply.

Blind rejection (sample from the prior, keep the matches) costs about
``1 / frequency`` decodes per kept molecule, which is prohibitive for rare
cores. :func:`sample_with_core` instead starts where such molecules already
are in latent space: it finds *seed* molecules that contain every core (the
caller's, and those of the embedded MOSES training sample), encodes them, and
decodes noisy copies of their codes (``z_seed + noise * N(0, I)``, then
sampling at the model's temperature). Each kept molecule's latent point joins
the pool of seeds, so the search spreads beyond the training molecules. When
no seed contains the core, it falls back to prior samples until the first
match is found. :class:`CoreSamplingStats` reports decodes per kept molecule.

    >>> core = CoreFilter(["c1ccc2[nH]ccc2c1"])
    >>> core.violation("Cc1c[nH]c2ccccc12") is None, core.violation("c1ccccc1")
    (True, 'lacks core c1ccc2[nH]ccc2c1')
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from molgen import chem
from molgen.errors import ConfigError

__all__ = ["CoreFilter", "CoreSamplingStats", "find_core_seeds", "sample_with_core"]


class CoreFilter:
    """Molecules must contain every SMARTS pattern (RDKit substructure match)."""

    def __init__(self, smarts: Sequence[str]) -> None:
        from rdkit import Chem, rdBase

        self.smarts = [s.strip() for s in smarts]
        self.patterns = []
        for s in self.smarts:
            with rdBase.BlockLogs():  # the error below says it in one line
                query = Chem.MolFromSmarts(s) if s else None
            if query is None:
                raise ConfigError(f"--substructure {s!r} is not valid SMARTS; e.g. 'c1ccc2[nH]ccc2c1' (indole)")
            self.patterns.append(query)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, smiles_or_mol) -> bool:
        mol = chem.try_parse(smiles_or_mol)[0] if isinstance(smiles_or_mol, str) else smiles_or_mol
        return mol is not None and all(mol.HasSubstructMatch(q) for q in self.patterns)

    def violation(self, smiles: str) -> str | None:
        """None when ``smiles`` contains every core, else the reason (for the oracle's log)."""
        from rdkit import Chem

        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return "does not parse"
        missing = [s for s, q in zip(self.smarts, self.patterns) if not mol.HasSubstructMatch(q)]
        return "lacks core " + ", ".join(missing) if missing else None


def find_core_seeds(core: CoreFilter, pool: Sequence[str] | None = None, limit: int = 2000) -> list[str]:
    """The first ``limit`` molecules of ``pool`` (default: the embedded MOSES training sample) with every core.

    The pool is scanned in chunks, stopping once ``limit`` are found (a common core costs a fraction of it).
    """
    if pool is None:
        return list(_training_seeds(tuple(core.smarts), limit))
    match = functools.partial(_matches_all, smarts=tuple(core.smarts))
    found: list[str] = []
    for start in range(0, len(pool), _SCAN_CHUNK):
        chunk = list(pool[start : start + _SCAN_CHUNK])
        found += [s for s, ok in zip(chunk, chem.pmap(match, chunk)) if ok]
        if len(found) >= limit:
            break
    return found[:limit]


_SCAN_CHUNK = 5000


@functools.lru_cache(maxsize=16)
def _training_seeds(smarts: tuple[str, ...], limit: int) -> tuple[str, ...]:
    from molgen.datasets import default_training_smiles

    return tuple(find_core_seeds(CoreFilter(smarts), default_training_smiles(), limit))


@functools.lru_cache(maxsize=8)
def _filter(smarts: tuple[str, ...]) -> CoreFilter:
    return CoreFilter(smarts)


def _matches_all(smiles: str, smarts: tuple[str, ...]) -> bool:
    return _filter(smarts).matches(smiles)


@dataclass
class CoreSamplingStats:
    """How the molecules were found: decodes spent, valid decodes, matches, seeds used."""

    decoded: int = 0
    valid: int = 0
    matched: int = 0
    kept: int = 0
    seeds: int = 0
    fallback_prior: bool = False
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def decodes_per_kept(self) -> float:
        return self.decoded / self.kept if self.kept else math.inf

    def to_dict(self) -> dict:
        return {
            "decoded": self.decoded, "valid": self.valid, "matched": self.matched, "kept": self.kept, "seeds": self.seeds,
            "decodes_per_kept": round(self.decodes_per_kept, 3), "fallback_prior": self.fallback_prior, "seconds": round(self.seconds, 2),
        }  # fmt: skip


def sample_with_core(
    vae,
    smarts: Sequence[str],
    n: int,
    seeds: Sequence[str] | None = None,
    noise: float = 0.4,
    temperature: float | None = None,
    unique: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    max_decodes: int | None = None,
    use_training_seeds: bool = True,
    progress=None,
) -> tuple[list[str], CoreSamplingStats]:
    """``n`` molecules that contain every SMARTS in ``smarts`` (fewer, with a warning, if ``max_decodes`` runs out).

    Args:
        seeds: molecules to start from (those without the core are dropped); the embedded training
            molecules with the core are added unless ``use_training_seeds`` is False.
        noise: standard deviation of the Gaussian step around a seed's code (prior units).
        unique: count each molecule once (the output then has no repeats).
        max_decodes: stop after this many decodes (default: ``max(100 n, 10000)``).
        progress: called as ``progress(decoded, kept)`` after every batch.
    """
    import time

    from molgen.generate.decoding import DecodeOptions
    from molgen.generate.prior import latent_sampler

    core = CoreFilter(smarts)
    if n < 0 or noise < 0:
        raise ConfigError("number of molecules and noise must be >= 0")
    t0 = time.perf_counter()
    given = [s for s in (seeds or []) if core.matches(s)]
    pool = list(dict.fromkeys(given + (find_core_seeds(core) if use_training_seeds else [])))
    z_seeds = vae.encode(pool)[0] if pool else np.zeros((0, vae.config.latent_dim), dtype=np.float32)
    stats = CoreSamplingStats(seeds=len(z_seeds))  # seeds the model can encode
    z_pool = torch.from_numpy(z_seeds)
    draw_prior = latent_sampler(vae, "auto")
    gen = torch.Generator().manual_seed(seed)
    options = DecodeOptions(strategy="sample", temperature=vae.default_temperature if temperature is None else temperature)
    limit = max_decodes if max_decodes is not None else max(100 * n, 10_000)
    kept: list[str] = []
    seen: set[str] = set()
    step = 0
    while len(kept) < n and stats.decoded < limit:
        m = min(batch_size, limit - stats.decoded)
        if len(z_pool):
            rows = torch.randint(len(z_pool), (m,), generator=gen)
            z = z_pool[rows] + noise * torch.randn(m, z_pool.shape[1], generator=gen)
        else:
            stats.fallback_prior = True
            z = draw_prior(m, gen)
        smiles = vae.decode(z, options, seed=seed + step)
        step += 1
        stats.decoded += m
        new_z = []
        for i, s in enumerate(smiles):
            if s is None:
                continue
            stats.valid += 1
            if not core.matches(s):
                continue
            stats.matched += 1
            if unique and s in seen:
                continue
            seen.add(s)
            if len(kept) < n:
                kept.append(s)
                new_z.append(z[i])
        if new_z:  # kept molecules seed later batches: the search walks away from the training set
            z_pool = torch.cat([z_pool, torch.stack(new_z).to(z_pool.dtype)])
        if progress is not None:
            progress(stats.decoded, len(kept))
    stats.kept = len(kept)
    stats.seconds = time.perf_counter() - t0
    if len(kept) < n:
        warnings.warn(f"found {len(kept)} of {n} molecules with {', '.join(core.smarts)} in {stats.decoded:,} decodes; "
                      "raise max_decodes or pass seed molecules that contain the core", stacklevel=2)  # fmt: skip
    return kept, stats
