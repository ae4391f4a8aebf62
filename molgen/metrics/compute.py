"""The MOSES benchmark metrics of a generated set (Polykovskiy et al. 2020).

:func:`compute_metrics` returns the numbers of MOSES's ``get_all_metrics``
under the same keys, computed by molgen's own code, plus the Wasserstein-1
distances of four properties and GuacaMol's KL-divergence score:

==================  ============================================================
``valid``           fraction of generated strings that RDKit parses and sanitizes
``unique@k``        distinct canonical SMILES among the first k valid molecules
``FCD/<ref>``       Frechet ChemNet Distance (valid molecules, duplicates kept)
``SNN/<ref>``       mean over valid molecules of the highest Tanimoto similarity
                    (Morgan r=2, 1024 bits) to a reference molecule
``Frag/<ref>``      cosine similarity of BRICS fragment counts
``Scaf/<ref>``      cosine similarity of Bemis--Murcko scaffold counts
``IntDiv``          1 - mean pairwise Tanimoto similarity (self-pairs included)
``IntDiv2``         1 - mean_i sqrt(mean_j T_ij^2); both over all pairs up to
                    :data:`INTDIV_EXACT_MAX` distinct molecules, estimated above
                    it (``IntDiv_stderr``, ``IntDiv2_stderr`` and
                    ``intdiv_rows`` then say how)
``Filters``         fraction passing the MCF/PAINS/charge/atom-type filters
``Novelty``         fraction of distinct valid molecules absent from ``train``
``logP`` ... ``weight``  Wasserstein-1 distance of the property distributions
``KL``              GuacaMol KL-divergence score (1 = identical distributions)
==================  ============================================================

``<ref>`` is ``TestSF`` for the MOSES scaffold test set and ``Test`` otherwise.
Like MOSES, everything after ``valid`` is computed on the valid molecules with
their duplicates; molgen computes the per-molecule work once per distinct
molecule and weights it by multiplicity, which gives the same numbers.

Known deviation: strings with embedded whitespace (``"CCO foo"``) are invalid
here; MOSES would read the first word and call it valid.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import wasserstein_distance

from molgen.chem._pool import pmap
from molgen.errors import DataError
from molgen.metrics import _features
from molgen.metrics.fcd import frechet_distance
from molgen.metrics.kl import kl_divergence_score
from molgen.metrics.reference import (
    SetStatistics,
    read_smiles_file,
    reference_statistics,
    summarize,
)
from molgen.metrics.similarity import (
    estimated_internal_diversity,
    internal_diversity,
    nearest_similarity,
)
from molgen.utils.progress import progress_bar

__all__ = [
    "compute_metrics",
    "evaluate",
    "evaluate_many",
    "merge_metrics",
    "Evaluation",
    "reference_suffix",
    "load_generated",
    "UNIQUE_AT",
    "INTDIV_EXACT_MAX",
    "INTDIV_ROWS",
]

UNIQUE_AT = (1000, 10_000)
#: IntDiv over all pairs up to this many distinct molecules (100k: 5e9 pairs, about a CPU-minute).
INTDIV_EXACT_MAX = 100_000
#: Rows drawn to estimate IntDiv above that (standard error about 1e-4 on MOSES-like sets).
INTDIV_ROWS = 20_000
#: Metrics that depend on the reference set but carry no ``/<ref>`` suffix.
REFERENCE_DEPENDENT = (*_features.PROPERTY_NAMES, "KL", "fcd_reference_size")


@dataclass
class Evaluation:
    """What :func:`evaluate` computed: the metrics and the statistics behind them."""

    metrics: dict[str, float]
    generated: SetStatistics
    reference: SetStatistics
    valid_smiles: list[str]


def compute_metrics(
    generated: Sequence[str] | str | os.PathLike,
    reference: str | os.PathLike | Sequence[str] = "moses-test",
    train: Sequence[str] | None = None,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
) -> dict[str, float]:
    """Score generated molecules against a reference set, MOSES style.

    Args:
        generated: SMILES strings, or a file with one sample per line; every
            entry counts, unparsable ones as invalid.
        reference: ``'moses-test'``, ``'moses-test-scaffolds'``, a SMILES
            file, or a list of SMILES. Its statistics are cached.
        train: canonical SMILES of the training set, for ``Novelty``
            (compared as strings, as MOSES does); ``None`` leaves it out.
        n_jobs: worker processes for RDKit work (``None``: all CPUs).
        device: torch device for ChemNet and the similarity products.
        batch_size: ChemNet batch size (None: 32 on the CPU, 512 on a GPU).
        cache_dir: cache folder for reference statistics.
        intdiv_exact_max: IntDiv over all pairs up to this many distinct
            molecules, estimated above it (``None``: always all pairs).

    Returns:
        The metrics (see the module docstring) and ``n_generated``,
        ``n_valid``, ``fcd_sample_size`` (valid molecules the FCD saw) and
        ``fcd_reference_size``.

    Raises:
        DataError: the generated set is empty or has no valid molecule, or
            the reference cannot be read.

    Example::

        >>> m = compute_metrics(["CCO", "c1ccccc1", "not a smiles"], reference=["CCN", "c1ccncc1"])
        >>> round(m["valid"], 3)
        0.667
    """
    return evaluate(generated, reference, train, n_jobs, device, batch_size, cache_dir, intdiv_exact_max).metrics


def evaluate(
    generated: Sequence[str] | str | os.PathLike,
    reference: str | os.PathLike | Sequence[str] = "moses-test",
    train: Sequence[str] | None = None,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
) -> Evaluation:
    """:func:`compute_metrics`, also returning the set statistics (for plots)."""
    return evaluate_many(generated, [reference], train, n_jobs, device, batch_size, cache_dir, intdiv_exact_max)[0]


def evaluate_many(
    generated: Sequence[str] | str | os.PathLike,
    references: Sequence[str | os.PathLike | Sequence[str]],
    train: Sequence[str] | None = None,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
    show_progress: bool = False,
) -> list[Evaluation]:
    """Score one generated set against several references in one pass.

    The generated-side work (parsing, features, ChemNet activations, internal
    diversity, KL sample) is done once and shared; only the comparisons are
    repeated per reference, as MOSES's ``get_all_metrics`` does for its test
    and scaffold-test sets. Returns one :class:`Evaluation` per reference, in
    order; the reference-independent metrics are the same in each.
    ``show_progress`` prints a progress line (rate, ETA) for each long step.
    """
    if not references:
        raise DataError("no reference set given; pass at least one (e.g. 'moses-test')")
    samples = load_generated(generated)
    if not samples:
        raise DataError("the generated set is empty; pass at least one SMILES to score")
    with progress_bar(len(samples), "reading generated", show_progress, "mol") as bar:
        pairs = pmap(_features.canonicalize, samples, n_jobs=n_jobs, on_failure=_features.not_canonical, progress=bar)
    valid = [p for p in pairs if p.smiles is not None]
    if not valid:
        raise DataError(
            f"none of the {len(samples)} generated strings is a valid SMILES; check the generator or the file format"
        )
    canonical = [p.smiles for p in valid]
    refs = [
        reference_statistics(
            reference, n_jobs=n_jobs, device=device, batch_size=batch_size, cache_dir=cache_dir, show_progress=show_progress
        )
        for reference in references
    ]
    gen = summarize(canonical, [p.flat for p in valid], "first", n_jobs, device, batch_size, show_progress)

    novelty = _novelty(canonical, train) if train is not None else None
    shared = _shared_metrics(len(valid) / len(samples), canonical, gen, novelty, device, intdiv_exact_max)
    return _assemble(references, refs, gen, shared, len(samples), canonical, device)


def _shared_metrics(
    validity: float,
    head: Sequence[str],
    gen: SetStatistics,
    novelty: float | None,
    device: str,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
) -> dict[str, float]:
    """The reference-independent metrics; ``head`` starts with the first valid molecules, in order.

    IntDiv is exact when ``intdiv_exact_max`` is ``None`` or the set has at most
    that many distinct molecules, else estimated from :data:`INTDIV_ROWS` rows.
    """
    shared: dict[str, float] = {"valid": validity}
    for k in UNIQUE_AT:
        shared[f"unique@{k}"] = _unique_at(head, k)
    if intdiv_exact_max is None or len(gen.fingerprints) <= intdiv_exact_max:
        shared["IntDiv"], shared["IntDiv2"] = internal_diversity(
            gen.fingerprints, gen.counts, _features.FP_BITS, device
        )
    else:
        estimate = estimated_internal_diversity(
            gen.fingerprints, gen.counts, _features.FP_BITS, INTDIV_ROWS, device=device
        )
        shared["IntDiv"], shared["IntDiv2"] = estimate.intdiv1, estimate.intdiv2
        shared["IntDiv_stderr"], shared["IntDiv2_stderr"] = estimate.stderr1, estimate.stderr2
        shared["intdiv_rows"] = estimate.rows
    shared["Filters"] = _weighted_mean(gen.passes_filters.astype(np.float64), gen.counts)
    if novelty is not None:
        shared["Novelty"] = novelty
    return shared


def _assemble(
    references: Sequence[object],
    refs: Sequence[SetStatistics],
    gen: SetStatistics,
    shared: dict[str, float],
    n_generated: int,
    valid_smiles: list[str],
    device: str,
    snn: Sequence[np.ndarray] | None = None,
) -> list[Evaluation]:
    """One :class:`Evaluation` per reference from the generated-side statistics.

    ``snn`` holds, per reference, each distinct generated molecule's nearest
    similarity when it is already known (merged shards); else it is computed.
    """
    evaluations = []
    for j, (reference, ref) in enumerate(zip(references, refs, strict=True)):
        suffix = reference_suffix(reference)
        # MOSES's key order: validity and uniqueness, the reference comparisons, the rest.
        head = ["valid", *(f"unique@{k}" for k in UNIQUE_AT)]
        metrics = {key: shared[key] for key in head}
        metrics.update(_reference_metrics(gen, ref, suffix, device, None if snn is None else snn[j]))
        metrics.update({k: v for k, v in shared.items() if k not in head})
        metrics.update(_property_distances(gen, ref))
        metrics["KL"] = kl_divergence_score(
            gen.kl_descriptors,
            gen.kl_max_similarity,
            ref.kl_descriptors,
            ref.kl_max_similarity,
            _features.KL_N_CONTINUOUS,
        )
        metrics["n_generated"] = n_generated
        metrics["n_valid"] = gen.n_molecules
        metrics["fcd_sample_size"] = gen.n_molecules if gen.n_molecules >= 2 else 0
        metrics["fcd_reference_size"] = ref.n_molecules
        evaluations.append(
            Evaluation(metrics=metrics, generated=gen, reference=ref, valid_smiles=valid_smiles)
        )
    return evaluations


def merge_metrics(evaluations: Sequence[Evaluation], suffixes: Sequence[str]) -> dict[str, float]:
    """One metrics dict for several references, as MOSES's ``get_all_metrics`` reports them.

    The first reference's metrics are kept whole. Of each further one, the
    ``/<suffix>`` comparisons are added, and the metrics that depend on the
    reference but carry no suffix (property distances, ``KL``,
    ``fcd_reference_size``) are added as ``<name>/<suffix>`` rather than
    overwriting the first reference's.
    """
    merged = dict(evaluations[0].metrics)
    for evaluation, suffix in zip(evaluations[1:], suffixes[1:], strict=True):
        for key, value in evaluation.metrics.items():
            if key.endswith(f"/{suffix}"):
                merged[key] = value
            elif key in REFERENCE_DEPENDENT:
                merged[f"{key}/{suffix}"] = value
    return merged


def _reference_metrics(
    gen: SetStatistics,
    ref: SetStatistics,
    suffix: str,
    device: str,
    snn: np.ndarray | None = None,
) -> dict[str, float]:
    """FCD, SNN, Frag and Scaf of the generated set against one reference."""
    if snn is None:
        snn = nearest_similarity(gen.fingerprints, ref.fingerprints, _features.FP_BITS, device=device)
    return {
        f"FCD/{suffix}": (
            frechet_distance(gen.fcd_mu, gen.fcd_sigma, ref.fcd_mu, ref.fcd_sigma)
            if gen.n_molecules >= 2
            else float("nan")
        ),
        f"SNN/{suffix}": _weighted_mean(snn, gen.counts),
        f"Frag/{suffix}": _count_cosine(
            gen.fragment_keys, gen.fragment_counts, ref.fragment_keys, ref.fragment_counts
        ),
        f"Scaf/{suffix}": _count_cosine(
            gen.scaffold_keys, gen.scaffold_counts, ref.scaffold_keys, ref.scaffold_counts
        ),
    }


def reference_suffix(reference: object) -> str:
    """MOSES's metric-name suffix for a reference: ``TestSF`` for the scaffold test set."""
    return "TestSF" if reference == "moses-test-scaffolds" else "Test"


def load_generated(generated: Sequence[str] | str | os.PathLike) -> list[str]:
    """The generated samples as a list: a file is read one sample per line."""
    if isinstance(generated, (str, os.PathLike)):
        return read_smiles_file(Path(generated))
    return [s if isinstance(s, str) else "" for s in generated]


def _unique_at(canonical: list[str], k: int) -> float:
    head = canonical[:k]
    if len(head) < k:
        warnings.warn(f"unique@{k} computed on only {len(head)} valid molecules", stacklevel=3)
    return len(set(head)) / len(head)


def _novelty(canonical: list[str], train: Sequence[str]) -> float:
    distinct = set(canonical)
    return len(distinct - set(train)) / len(distinct)


def _weighted_mean(values: np.ndarray, counts: np.ndarray) -> float:
    return float(np.sum(values.astype(np.float64) * counts) / np.sum(counts))


def _count_cosine(
    keys_a: np.ndarray, counts_a: np.ndarray, keys_b: np.ndarray, counts_b: np.ndarray
) -> float:
    """Cosine similarity of two count vectors given as (keys, counts); NaN if one is empty."""
    if len(keys_a) == 0 or len(keys_b) == 0:
        return float("nan")
    index = {key: i for i, key in enumerate(keys_b.tolist())}
    matched = [
        (count, index[key])
        for key, count in zip(keys_a.tolist(), counts_a.tolist(), strict=True)
        if key in index
    ]
    dot = float(sum(float(count) * float(counts_b[j]) for count, j in matched))
    norm_a = np.linalg.norm(counts_a.astype(np.float64))
    norm_b = np.linalg.norm(counts_b.astype(np.float64))
    return dot / (norm_a * norm_b)


def _property_distances(gen: SetStatistics, ref: SetStatistics) -> dict[str, float]:
    return {
        name: float(
            wasserstein_distance(ref.properties[:, i], gen.properties[:, i], ref.counts, gen.counts)
        )
        for i, name in enumerate(_features.PROPERTY_NAMES)
    }
