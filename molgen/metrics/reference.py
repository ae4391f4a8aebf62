"""Statistics of a set of molecules, and the on-disk cache for reference sets.

:class:`SetStatistics` holds everything the metrics compare between the
generated and the reference set: per distinct molecule its multiplicity,
packed Morgan fingerprint, properties and filter result; the ChemNet Gaussian
(FCD); BRICS fragment and scaffold counts; and the GuacaMol KL sample
(descriptors and internal nearest-neighbour similarities).

Statistics of a reference set are computed once and saved as ``.npz`` (no
pickles) under ``<cache_dir>/metrics/``, keyed by a hash of the reference file's
bytes (or of the SMILES list) and :data:`METRICS_VERSION`; a later run against
the same reference loads them.

Example::

    >>> stats = reference_statistics(["CCO", "c1ccccc1O", "CC(=O)Nc1ccccc1"], cache_dir="/tmp/x")
    >>> stats.n_molecules
    3
"""

from __future__ import annotations

import csv
import hashlib
import os
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from molgen.chem._pool import pmap
from molgen.errors import DataError
from molgen.metrics import _features
from molgen.metrics.fcd import chemnet_statistics
from molgen.metrics.kl import KL_SAMPLE_SIZE
from molgen.metrics.set_statistics import METRICS_VERSION, SetStatistics
from molgen.metrics.similarity import nearest_similarity
from molgen.utils.progress import ProgressHandle, progress_bar

__all__ = [
    "METRICS_VERSION",
    "REFERENCE_NAMES",
    "SetStatistics",
    "summarize",
    "reference_statistics",
    "resolve_reference",
    "reference_digest",
    "read_smiles_file",
    "default_cache_dir",
]

#: Reference sets known by name, and the MOSES split each one stands for.
REFERENCE_NAMES = {"moses-test": "test", "moses-test-scaffolds": "test_scaffolds"}
_KL_SEED = 42
_SMILES_HEADERS = frozenset({"smiles", "smile", "canonical_smiles"})


def summarize(
    canonical: Sequence[str],
    flat: Sequence[str],
    kl_pick: Literal["first", "random"],
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> SetStatistics:
    """Statistics of a multiset of valid molecules.

    Args:
        canonical: canonical isomeric SMILES, duplicates included.
        flat: the same molecules as canonical SMILES without stereochemistry.
        kl_pick: which :data:`~molgen.metrics.kl.KL_SAMPLE_SIZE` distinct
            stereo-free molecules form the KL sample: the first ones
            (generated sets, as GuacaMol) or a seeded random choice (reference).
        n_jobs: worker processes for RDKit work (``None``: all CPUs).
        device: torch device for ChemNet and the similarity products.
        batch_size: ChemNet batch size (None: 32 on the CPU, 512 on a GPU).
        show_progress: a progress line (rate, ETA) per step on stderr.
    """
    return _summarize(canonical, flat, kl_pick, n_jobs, device, batch_size, show_progress)[0]


def _summarize(
    canonical: Sequence[str],
    flat: Sequence[str],
    kl_pick: Literal["first", "random"],
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    show_progress: bool = False,
) -> tuple[SetStatistics, list[str], np.ndarray]:
    """:func:`summarize`, also returning the KL sample's stereo-free SMILES and packed fingerprints.

    Shards of a benchmark keep these so that a merge can rebuild the KL sample
    of the whole set (:mod:`molgen.metrics.partial`).
    """
    multiplicity = Counter(canonical)
    distinct = list(multiplicity)
    counts = np.array([multiplicity[s] for s in distinct], dtype=np.int64)
    # ChemNet (torch, which releases the GIL) runs in a thread beside the RDKit features and the KL
    # sample (worker processes): on 1,000 molecules on 2 CPUs the three took 1.5 + 3.1 + 0.8 s one after
    # another. One bar counts all three passes (two live bars cannot share a terminal).
    total = 2 * len(distinct) + min(len(set(flat)), KL_SAMPLE_SIZE)
    with progress_bar(total, "features, ChemNet, KL sample", show_progress, "mol") as bar, ThreadPoolExecutor(1) as thread:
        beside = _Stoppable(bar)
        chemnet = thread.submit(_chemnet_of_canonical, distinct, counts, device, batch_size, beside)
        try:
            features = pmap(_features.featurize, distinct, n_jobs=n_jobs, progress=bar, threshold=_HEAVY_THRESHOLD)
            kl_flat, kl_descriptors, kl_packed = kl_sample(flat, kl_pick, n_jobs, progress=bar)
        except BaseException:
            beside.stop.set()  # an error or Ctrl-C here ends the thread at its next block, not after the whole set
            raise
        mu, sigma = chemnet.result()
    fragments: Counter[str] = Counter()
    scaffolds: Counter[str] = Counter()
    for feature, count in zip(features, counts, strict=True):
        for piece in feature.fragments:
            fragments[piece] += int(count)
        if feature.scaffold is not None:
            scaffolds[feature.scaffold] += int(count)
    kl_similarity = kl_internal_similarity(kl_packed, device)
    stats = SetStatistics(
        n_molecules=int(counts.sum()),
        counts=counts,
        fingerprints=np.frombuffer(
            b"".join(f.fingerprint for f in features), dtype=np.uint8
        ).reshape(len(features), _features.FP_BITS // 8),
        properties=np.array([f.properties for f in features], dtype=np.float64).reshape(-1, 4),
        passes_filters=np.array([f.passes_filters for f in features], dtype=bool),
        fcd_mu=mu,
        fcd_sigma=sigma,
        fragment_keys=np.array(list(fragments), dtype=np.str_),
        fragment_counts=np.array(list(fragments.values()), dtype=np.int64),
        scaffold_keys=np.array(list(scaffolds), dtype=np.str_),
        scaffold_counts=np.array(list(scaffolds.values()), dtype=np.int64),
        kl_descriptors=kl_descriptors,
        kl_max_similarity=kl_similarity,
    )
    return stats, kl_flat, kl_packed


def reference_statistics(
    reference: str | os.PathLike | Sequence[str],
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    show_progress: bool = False,
) -> SetStatistics:
    """Statistics of a reference set, from the cache when they are there.

    The MOSES test sets need no pass over their molecules: their statistics
    are assembled from the files the ``molsets`` wheel ships and the parts
    molgen ships in ``data/`` (:mod:`molgen.metrics.moses_stats`).

    Args:
        reference: ``'moses-test'``, ``'moses-test-scaffolds'``, a SMILES file
            (``.smi``/``.txt``/``.csv``, optionally gzipped) or a list of SMILES.
        n_jobs, device, batch_size: as for :func:`summarize`.
        cache_dir: where the ``metrics/`` cache folder lives; default
            :func:`default_cache_dir`.
        show_progress: a progress line (rate, ETA) per step on stderr.

    Raises:
        DataError: the reference is missing or has no valid molecule.
    """
    if isinstance(reference, (str, os.PathLike)):
        path = resolve_reference(reference, cache_dir)
        smiles_source: Sequence[str] | Path = path
        label = path.name
    else:
        smiles_source = list(reference)
        label = f"{len(smiles_source)} SMILES"
    digest = reference_digest(smiles_source, cache_dir)
    cache_file = (
        Path(cache_dir or default_cache_dir())
        / "metrics"
        / f"reference-v{METRICS_VERSION}-{digest[:24]}.npz"
    )
    if cache_file.exists():
        try:
            return SetStatistics.load(cache_file)
        except DataError as exc:  # a damaged or foreign file under the cache's name: computed again and replaced
            warnings.warn(f"ignoring the cached reference statistics: {exc}", stacklevel=2)
    stats = None
    if isinstance(reference, str) and reference in REFERENCE_NAMES:
        from molgen.metrics.moses_stats import shipped_reference_statistics

        stats = shipped_reference_statistics(REFERENCE_NAMES[reference], digest, smiles_source)
    if stats is None:
        stats = _compute_reference(smiles_source, label, n_jobs, device, batch_size, show_progress)
    stats.save(cache_file)
    return stats


def _compute_reference(
    source: Sequence[str] | Path,
    label: str,
    n_jobs: int | None,
    device: str,
    batch_size: int | None,
    show_progress: bool,
) -> SetStatistics:
    """One pass over a reference set's molecules: :func:`summarize` of its valid ones."""
    smiles = read_smiles_file(source) if isinstance(source, Path) else source
    with progress_bar(len(smiles), f"reading {label}", show_progress, "mol") as bar:
        pairs = [c for c in pmap(_features.canonicalize, smiles, n_jobs=n_jobs, on_failure=_features.not_canonical, progress=bar) if c.smiles is not None]
    if not pairs:
        raise DataError(
            f"reference set {label} has no valid SMILES; pass a file with one SMILES per line"
        )
    return summarize(
        [p.smiles for p in pairs], [p.flat for p in pairs], "random", n_jobs, device, batch_size, show_progress
    )


def reference_digest(
    reference: str | os.PathLike | Sequence[str], cache_dir: str | os.PathLike | None = None
) -> str:
    """SHA-256 that identifies a reference set: of its file's bytes, or of the SMILES list."""
    if isinstance(reference, (str, os.PathLike)):
        return hashlib.sha256(resolve_reference(reference, cache_dir).read_bytes()).hexdigest()
    return hashlib.sha256("\n".join(reference).encode()).hexdigest()


def resolve_reference(
    reference: str | os.PathLike, cache_dir: str | os.PathLike | None = None
) -> Path:
    """Path of a named reference set or of a reference file.

    Named sets live in ``<cache_dir>/moses`` (see :func:`molgen.datasets.moses_split`).

    Raises:
        DataError: the file does not exist.
    """
    if isinstance(reference, str) and reference in REFERENCE_NAMES:
        from molgen.datasets import moses_split  # late: only named references need it

        moses_dir = None if cache_dir is None else Path(cache_dir) / "moses"
        return Path(moses_split(REFERENCE_NAMES[reference], cache_dir=moses_dir))
    path = Path(reference)
    if not path.is_file():
        names = ", ".join(REFERENCE_NAMES)
        raise DataError(
            f"reference {str(reference)!r} is neither a file nor one of {names}; check the path"
        )
    return path


def read_smiles_file(path: str | os.PathLike) -> list[str]:
    """Every record of a SMILES file, garbage included (one sample per line).

    Text files give the first whitespace-separated field of each line (an
    empty line gives an empty string); CSV files give the ``SMILES`` column
    (any case), else the first column. A header line naming a SMILES column is
    skipped. Gzip, BOMs, CRLF and UTF-16 are read transparently; a line that is
    not UTF-8 counts as an invalid sample (see
    :func:`molgen.datasets.readers.read_lines`).

    Raises:
        DataError: the file is missing or unreadable, or a truncated gzip.
    """
    from molgen.datasets.readers import read_lines

    path = Path(path)
    lines = read_lines(path)
    stem_suffix = Path(path.stem).suffix if path.suffix == ".gz" else path.suffix
    if stem_suffix == ".csv":
        return _csv_column(lines)
    records = [line.split()[0] if line.strip() else "" for line in lines]
    if records and records[0].lower() in _SMILES_HEADERS:
        records = records[1:]
    return records


def default_cache_dir() -> Path:
    """molgen's cache root: ``$MOLGEN_CACHE``, else ``~/.cache/molgen`` (as molgen.datasets)."""
    root = os.environ.get("MOLGEN_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "molgen"


def _csv_column(lines: list[str]) -> list[str]:
    rows = list(csv.reader(lines))
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((i for i, name in enumerate(header) if name in _SMILES_HEADERS), None)
    body = rows[1:] if column is not None else rows
    column = column or 0
    return [row[column].strip() if len(row) > column else "" for row in body]


#: Inputs from this size go to worker processes for the per-molecule features (about 3 CPU-ms each;
#: the fork pool costs tens of milliseconds), rather than pmap's default for cheap work.
_HEAVY_THRESHOLD = 256


class _Stopped(Exception):
    """The work beside the features was told to stop (they failed or were interrupted)."""


class _Stoppable(ProgressHandle):
    """A bar handle for work in a thread: advancing it raises :class:`_Stopped` once ``stop`` is set."""

    def __init__(self, inner: ProgressHandle) -> None:
        self.inner, self.stop = inner, threading.Event()

    def advance(self, n: int = 1, **stats: float) -> None:
        if self.stop.is_set():
            raise _Stopped
        self.inner.advance(n, **stats)


def _chemnet_of_canonical(
    canonical: list[str], counts: np.ndarray, device: str, batch_size: int | None, progress: _Stoppable
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_fcd_statistics` of canonical SMILES, their ChemNet input written here (as :func:`_features.featurize` writes it)."""
    inputs = []
    for start in range(0, len(canonical), 1000):
        progress.advance(0)  # a stop is noticed between blocks of the RDKit work too
        inputs += [_features.fcd_input(s) for s in canonical[start : start + 1000]]
    return _fcd_statistics(inputs, counts, device, batch_size, progress)


def _fcd_statistics(
    smiles: list[str], counts: np.ndarray, device: str, batch_size: int | None, progress=None
) -> tuple[np.ndarray, np.ndarray]:
    if counts.sum() < 2:
        return np.full(512, np.nan), np.full((512, 512), np.nan)
    return chemnet_statistics(smiles, counts, batch_size=batch_size, device=device, progress=progress)


def kl_sample(
    flat: Sequence[str], pick: Literal["first", "random"], n_jobs: int | None = None, show_progress: bool = False, progress=None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The GuacaMol KL sample: its stereo-free SMILES, descriptors and packed ECFP4 fingerprints.

    ``progress``: a bar handle to advance instead of a bar of its own (``show_progress``)."""
    distinct = list(dict.fromkeys(flat))
    if pick == "first" or len(distinct) <= KL_SAMPLE_SIZE:
        sample = distinct[:KL_SAMPLE_SIZE]
    else:
        chosen = np.random.default_rng(_KL_SEED).choice(
            len(distinct), KL_SAMPLE_SIZE, replace=False
        )
        sample = [distinct[i] for i in np.sort(chosen)]
    with progress_bar(len(sample), "KL sample", show_progress and progress is None, "mol") as bar:
        rows = pmap(_features.kl_featurize, sample, n_jobs=n_jobs, progress=progress or bar, threshold=_HEAVY_THRESHOLD)
    descriptors = np.array([r[0] for r in rows], dtype=np.float64).reshape(
        -1, len(_features.KL_DESCRIPTORS)
    )
    packed = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(
        len(rows), _features.KL_FP_BITS // 8
    )
    return sample, descriptors, packed


def kl_internal_similarity(packed: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Each KL-sample molecule's highest similarity to another member of the sample."""
    similarity = nearest_similarity(
        packed, packed, _features.KL_FP_BITS, exclude_self=True, device=device
    )
    return similarity.astype(np.float64)
