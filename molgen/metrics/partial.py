"""Benchmark statistics of one shard of a generated set, and their exact merge.

Most MOSES metrics are not averages of per-shard metrics: FCD needs the
ChemNet mean and covariance of the pooled set, uniqueness and novelty the
union of the molecules, Frag and Scaf the pooled count vectors, IntDiv all
pairs. So a shard does not report metrics; it saves what the metrics are made
of, and :func:`merge_partials` combines the shards into the numbers that one
run over the concatenated shards (in shard order) gives.

A shard does all the per-molecule work -- RDKit parsing, canonicalisation,
features, filters, ChemNet activations, nearest-neighbour similarity to each
reference (SNN), the KL sample's descriptors -- and saves, as a plain ``.npz``
(no pickles):

* counts: samples and valid molecules;
* the first :data:`~molgen.metrics.compute.UNIQUE_AT` valid canonical SMILES in
  order (``unique@k`` of the whole set needs only the head of the first shards);
* per distinct molecule: canonical SMILES, multiplicity, packed Morgan
  fingerprint, properties, filter result, novelty flag and SNN per reference;
* the ChemNet Gaussian as mean and scatter matrix, which pool exactly
  (Chan, Golub and LeVeque 1979, the pairwise update for means and
  co-moments);
* BRICS fragment and scaffold counters;
* its KL sample: stereo-free SMILES, descriptors, packed ECFP4 fingerprints and
  internal similarities.

The merge unions the distinct molecules in first-occurrence order (the order a
single run sees), so everything but two quantities is bit-identical to a
single run: the pooled covariance differs in rounding only (FCD to ~1e-12),
and IntDiv, which needs all pairs, is computed in the merge from the saved
fingerprints -- the one quadratic step, as in a single run.

Example::

    >>> part = compute_partial(shard_smiles, ["moses-test"], shard=(3, 10))  # doctest: +SKIP
    >>> part.save("parts/bench-03.npz")                                     # doctest: +SKIP
    >>> evaluations = merge_partials(["parts/bench-00.npz", ...])            # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from molgen.chem._pool import pmap
from molgen.errors import ConfigError, DataError
from molgen.metrics import _features
from molgen.metrics.compute import (
    INTDIV_EXACT_MAX,
    UNIQUE_AT,
    Evaluation,
    _assemble,
    _shared_metrics,
    load_generated,
)
from molgen.metrics.fcd import GaussianMoments, chemnet_activations
from molgen.metrics.kl import KL_SAMPLE_SIZE
from molgen.metrics.reference import (
    METRICS_VERSION,
    SetStatistics,
    _summarize,
    kl_internal_similarity,
    reference_digest,
    reference_statistics,
)
from molgen.metrics.similarity import nearest_similarity
from molgen.utils.io import load_npz_arrays

__all__ = ["PartialStatistics", "compute_partial", "merge_partials", "train_digest"]

_FORMAT = 1
_HEAD = max(UNIQUE_AT)
_FCD_DIM = 512


@dataclass
class PartialStatistics:
    """What one shard saves (see the module docstring); ``meta`` names the shard and its job."""

    meta: dict[str, Any]
    n_generated: int
    n_valid: int
    head: np.ndarray
    smiles: np.ndarray
    counts: np.ndarray
    fingerprints: np.ndarray
    properties: np.ndarray
    passes_filters: np.ndarray
    novel: np.ndarray
    snn: np.ndarray
    fcd_mean: np.ndarray
    fcd_scatter: np.ndarray
    fragment_keys: np.ndarray
    fragment_counts: np.ndarray
    scaffold_keys: np.ndarray
    scaffold_counts: np.ndarray
    kl_flat: np.ndarray
    kl_descriptors: np.ndarray
    kl_fingerprints: np.ndarray
    kl_max_similarity: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def save(self, path: str | os.PathLike) -> Path:
        """Write a compressed ``.npz`` (no pickles) atomically."""
        from molgen.utils.io import atomic_output

        arrays = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self) if f.name != "meta"}
        arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True))
        path = Path(path)
        with atomic_output(path, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> PartialStatistics:
        """Read a file written by :meth:`save`; a one-line :class:`DataError` if it is not one."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"benchmark part {path} does not exist; check the path (or run that shard again)")
        what, fix = "a molgen benchmark part", "run that shard again with molgen benchmark --shard"
        values = load_npz_arrays(path, [f.name for f in fields(cls)], what, fix)
        try:
            meta = json.loads(str(values.pop("meta")))
        except ValueError as exc:
            raise DataError(f"{path} is not {what} (its meta data is not JSON: {exc}); {fix}") from None
        if meta.get("format") != _FORMAT or meta.get("metrics_version") != METRICS_VERSION:
            raise DataError(
                f"{path} was written by another molgen version (part format {meta.get('format')}, "
                f"metrics v{meta.get('metrics_version')}); run every shard with this version"
            )
        values["n_generated"] = int(values["n_generated"])
        values["n_valid"] = int(values["n_valid"])
        return cls(meta=meta, **values)


def train_digest(train: Sequence[str] | None) -> str | None:
    """SHA-256 of a training set as used for novelty (order-independent), or ``None``."""
    if train is None:
        return None
    return hashlib.sha256("\n".join(sorted(set(train))).encode()).hexdigest()


def compute_partial(
    generated: Sequence[str] | str | os.PathLike,
    references: Sequence[str | os.PathLike],
    shard: tuple[int, int],
    train: Sequence[str] | None = None,
    job: dict[str, Any] | None = None,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PartialStatistics:
    """The statistics of one shard's samples (every entry counts; invalid ones too).

    Args:
        generated: this shard's samples (strings, or a file of them).
        references: reference names or files, as for
            :func:`~molgen.metrics.compute.evaluate_many`; lists of SMILES are
            not accepted here (a merge must be able to find them again).
        shard: ``(index, count)``.
        train: training set for novelty; every shard must use the same one.
        job: settings all shards of the job share; the merge checks that they agree.
        n_jobs, device, batch_size, cache_dir: as for ``evaluate_many``.
    """
    if not references:
        raise DataError("no reference set given; pass at least one (e.g. 'moses-test')")
    if not all(isinstance(r, (str, os.PathLike)) for r in references):
        raise ConfigError("a sharded benchmark needs references by name or file, so that the merge can find them")
    names = [str(r) for r in references]
    refs = [reference_statistics(r, n_jobs=n_jobs, device=device, batch_size=batch_size, cache_dir=cache_dir) for r in references]
    meta = {
        "format": _FORMAT,
        "metrics_version": METRICS_VERSION,
        "shard": int(shard[0]),
        "of": int(shard[1]),
        "job": dict(job or {}),
        "references": [{"name": n, "digest": reference_digest(r, cache_dir)} for n, r in zip(names, references, strict=True)],
        "train": train_digest(train),
    }
    samples = load_generated(generated)
    pairs = pmap(_features.canonicalize, samples, n_jobs=n_jobs, on_failure=_features.not_canonical) if samples else []
    valid = [p for p in pairs if p.smiles is not None]
    canonical = [p.smiles for p in valid]
    if not valid:
        return _empty(meta, len(samples), len(refs))
    stats, kl_flat, kl_packed = _summarize(canonical, [p.flat for p in valid], "first", n_jobs, device, batch_size)
    distinct = list(dict.fromkeys(canonical))  # the order of stats' rows (first occurrence)
    n = stats.n_molecules
    if n >= 2:
        mean, scatter = stats.fcd_mu, stats.fcd_sigma * (n - 1)
    else:  # one molecule: its activation is the mean; the scatter is zero
        mean = chemnet_activations([_features.featurize(distinct[0]).fcd_smiles], device=device)[0].astype(np.float64)
        scatter = np.zeros((_FCD_DIM, _FCD_DIM))
    train_set = set(train) if train is not None else None
    return PartialStatistics(
        meta=meta,
        n_generated=len(samples),
        n_valid=len(valid),
        head=np.array(canonical[:_HEAD], dtype=np.str_),
        smiles=np.array(distinct, dtype=np.str_),
        counts=stats.counts,
        fingerprints=stats.fingerprints,
        properties=stats.properties,
        passes_filters=stats.passes_filters,
        novel=np.array([s not in train_set for s in distinct] if train_set is not None else [], dtype=bool),
        snn=np.stack([nearest_similarity(stats.fingerprints, ref.fingerprints, _features.FP_BITS, device=device) for ref in refs]),
        fcd_mean=mean,
        fcd_scatter=scatter,
        fragment_keys=stats.fragment_keys,
        fragment_counts=stats.fragment_counts,
        scaffold_keys=stats.scaffold_keys,
        scaffold_counts=stats.scaffold_counts,
        kl_flat=np.array(kl_flat, dtype=np.str_),
        kl_descriptors=stats.kl_descriptors,
        kl_fingerprints=kl_packed,
        kl_max_similarity=stats.kl_max_similarity,
    )


def merge_partials(
    parts: Sequence[PartialStatistics | str | os.PathLike],
    references: Sequence[str | os.PathLike] | None = None,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
) -> list[Evaluation]:
    """The metrics of the whole set from all of its shards' statistics.

    Args:
        parts: every shard's :class:`PartialStatistics` (or ``.npz`` path), any order.
        references: where to find the reference sets now, if not where the
            shards found them (same order); each must have the content the
            shards scored against (checked by SHA-256).
        n_jobs, device, batch_size, cache_dir, intdiv_exact_max: as for ``evaluate_many``.

    Returns:
        One :class:`Evaluation` per reference, as
        :func:`~molgen.metrics.compute.evaluate_many` on the concatenated
        shards returns; ``valid_smiles`` holds the distinct valid molecules.

    Raises:
        DataError: a shard is missing, repeated, from another job, or no
            sample at all is valid.
    """
    from molgen.utils.shards import check_complete

    loaded = [p if isinstance(p, PartialStatistics) else PartialStatistics.load(p) for p in parts]
    if not loaded:
        raise DataError("no benchmark parts given; pass the .npz files the --shard runs wrote")
    labels = [str(p) if not isinstance(p, PartialStatistics) else f"the part of shard {p.meta['shard']}/{p.meta['of']}" for p in parts]
    records = [{"shard": p.meta["shard"], "of": p.meta["of"], "job": _job_identity(p.meta)} for p in loaded]
    ordered = [loaded[k] for k in check_complete(records, labels)]
    n_generated = sum(p.n_generated for p in ordered)
    n_valid = sum(p.n_valid for p in ordered)
    if n_generated == 0:
        raise DataError("the generated set is empty; pass at least one SMILES to score")
    if n_valid == 0:
        raise DataError(f"none of the {n_generated} generated strings is a valid SMILES; check the generator or the file format")
    names = [r["name"] for r in ordered[0].meta["references"]]
    where = list(references) if references is not None else names
    if len(where) != len(names):
        raise DataError(f"the shards were scored against {len(names)} reference(s) ({', '.join(names)}); pass as many")
    refs = []
    for spot, record in zip(where, ordered[0].meta["references"], strict=True):
        if reference_digest(spot, cache_dir) != record["digest"]:
            raise DataError(f"reference {spot} is not the set the shards scored against ({record['name']}); pass that file")
        refs.append(reference_statistics(spot, n_jobs=n_jobs, device=device, batch_size=batch_size, cache_dir=cache_dir))
    with_valid = [p for p in ordered if p.n_valid]
    rows = _union(with_valid)
    gen = _merged_statistics(with_valid, rows, device)
    novelty = None
    if ordered[0].meta["train"] is not None:
        novel = np.concatenate([p.novel for p in with_valid])[rows.first]
        novelty = float(novel.sum()) / len(novel)
    head = [s for p in ordered for s in p.head[: _HEAD].tolist()][:_HEAD]
    shared = _shared_metrics(n_valid / n_generated, head, gen, novelty, device, intdiv_exact_max)
    snn = np.concatenate([p.snn for p in with_valid], axis=1)[:, rows.first]
    # Metric names come from the names the shards used (moses-test -> /Test).
    return _assemble(names, refs, gen, shared, n_generated, rows.smiles, device, snn=list(snn))


@dataclass
class _Rows:
    first: np.ndarray  # row of each distinct molecule's first occurrence in the concatenated parts
    counts: np.ndarray
    smiles: list[str]


def _union(parts: Sequence[PartialStatistics]) -> _Rows:
    """Distinct molecules of the concatenated parts, in first-occurrence order, with summed counts."""
    smiles = np.concatenate([p.smiles for p in parts])
    counts = np.concatenate([p.counts for p in parts]).astype(np.int64)
    _, first, inverse = np.unique(smiles, return_index=True, return_inverse=True)
    total = np.zeros(len(first), dtype=np.int64)
    np.add.at(total, inverse.reshape(-1), counts)
    order = np.argsort(first, kind="stable")
    return _Rows(first=first[order], counts=total[order], smiles=smiles[first[order]].tolist())


def _merged_statistics(parts: Sequence[PartialStatistics], rows: _Rows, device: str) -> SetStatistics:
    fragments: Counter[str] = Counter()
    scaffolds: Counter[str] = Counter()
    for p in parts:
        for key, count in zip(p.fragment_keys.tolist(), p.fragment_counts.tolist(), strict=True):
            fragments[key] += count
        for key, count in zip(p.scaffold_keys.tolist(), p.scaffold_counts.tolist(), strict=True):
            scaffolds[key] += count
    n, mu, sigma = _pooled_gaussian(parts)
    kl_descriptors, kl_similarity = _merged_kl_sample(parts, device)
    return SetStatistics(
        n_molecules=n,
        counts=rows.counts,
        fingerprints=np.concatenate([p.fingerprints for p in parts])[rows.first],
        properties=np.concatenate([p.properties for p in parts])[rows.first],
        passes_filters=np.concatenate([p.passes_filters for p in parts])[rows.first],
        fcd_mu=mu,
        fcd_sigma=sigma,
        fragment_keys=np.array(list(fragments), dtype=np.str_),
        fragment_counts=np.array(list(fragments.values()), dtype=np.int64),
        scaffold_keys=np.array(list(scaffolds), dtype=np.str_),
        scaffold_counts=np.array(list(scaffolds.values()), dtype=np.int64),
        kl_descriptors=kl_descriptors,
        kl_max_similarity=kl_similarity,
    )


def _pooled_gaussian(parts: Sequence[PartialStatistics]) -> tuple[int, np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of the pooled ChemNet activations (pairwise update)."""
    moments = GaussianMoments(_FCD_DIM)
    for p in parts:
        moments.merge(int(p.counts.sum()), p.fcd_mean, p.fcd_scatter)
    if moments.n < 2:
        return moments.n, np.full(_FCD_DIM, np.nan), np.full((_FCD_DIM, _FCD_DIM), np.nan)
    return moments.n, moments.mean, moments.covariance()


def _merged_kl_sample(parts: Sequence[PartialStatistics], device: str) -> tuple[np.ndarray, np.ndarray]:
    """The KL sample of the whole set: its first distinct stereo-free molecules."""
    if len(parts[0].kl_flat) >= KL_SAMPLE_SIZE:
        # The whole sample lies in the first shard: its internal similarities are already known.
        return parts[0].kl_descriptors, parts[0].kl_max_similarity
    flat = np.concatenate([p.kl_flat for p in parts])
    _, first = np.unique(flat, return_index=True)
    keep = np.sort(first)[:KL_SAMPLE_SIZE]
    descriptors = np.concatenate([p.kl_descriptors for p in parts])[keep]
    packed = np.concatenate([p.kl_fingerprints for p in parts])[keep]
    return descriptors, kl_internal_similarity(packed, device)


def _job_identity(meta: dict[str, Any]) -> dict[str, Any]:
    """What every shard of one job must share."""
    return {
        **meta["job"],
        "references": [r["digest"] for r in meta["references"]],
        "train": meta["train"],
    }


def _empty(meta: dict[str, Any], n_generated: int, n_refs: int) -> PartialStatistics:
    """Statistics of a shard without a valid molecule (it still counts for validity)."""
    text = np.zeros(0, dtype=np.str_)
    return PartialStatistics(
        meta=meta,
        n_generated=n_generated,
        n_valid=0,
        head=text,
        smiles=text,
        counts=np.zeros(0, dtype=np.int64),
        fingerprints=np.zeros((0, _features.FP_BITS // 8), dtype=np.uint8),
        properties=np.zeros((0, len(_features.PROPERTY_NAMES))),
        passes_filters=np.zeros(0, dtype=bool),
        novel=np.zeros(0, dtype=bool),
        snn=np.zeros((n_refs, 0), dtype=np.float32),
        fcd_mean=np.zeros(_FCD_DIM),
        fcd_scatter=np.zeros((_FCD_DIM, _FCD_DIM)),
        fragment_keys=text,
        fragment_counts=np.zeros(0, dtype=np.int64),
        scaffold_keys=text,
        scaffold_counts=np.zeros(0, dtype=np.int64),
        kl_flat=text,
        kl_descriptors=np.zeros((0, len(_features.KL_DESCRIPTORS))),
        kl_fingerprints=np.zeros((0, _features.KL_FP_BITS // 8), dtype=np.uint8),
        kl_max_similarity=np.zeros(0),
    )
