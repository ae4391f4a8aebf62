"""``molgen benchmark``: score generated molecules and write a report folder.

:func:`run_benchmark` computes the MOSES metrics (:mod:`molgen.metrics`) and
writes to ``out_dir``:

* ``metrics.json`` -- the metrics, the reference, sample sizes and timing;
* ``metrics.md`` -- a Markdown table with our row beside the MOSES baseline
  rows for the same reference (Polykovskiy et al. 2020; scaffold-test rows use
  the ``TestSF`` FCD column, the only scaffold-test column published there);
* ``properties.png`` -- histograms of logP, SA, QED and molecular weight,
  generated vs reference;
* ``molecules.png`` -- a grid of random valid generated molecules.

Example::

    >>> from molgen.metrics.benchmark import run_benchmark
    >>> report = run_benchmark("samples.smi", reference="moses-test", out_dir="report/")  # doctest: +SKIP
    >>> report["metrics"]["FCD/Test"]  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from molgen.errors import ConfigError
from molgen.metrics.compute import (
    INTDIV_EXACT_MAX,
    Evaluation,
    evaluate_many,
    merge_metrics,
    reference_suffix,
)
from molgen.metrics.partial import PartialStatistics, compute_partial, merge_partials
from molgen.utils.io import atomic_output, atomic_write_text
from molgen.utils.shards import ShardSpec

__all__ = ["run_benchmark", "run_benchmark_shard", "merge_benchmark", "MAIN_COLUMNS", "load_baselines"]

#: Metric columns of the main table (MOSES's README layout).
MAIN_COLUMNS = (
    "valid",
    "unique@1000",
    "unique@10000",
    "FCD",
    "SNN",
    "Frag",
    "Scaf",
    "IntDiv",
    "IntDiv2",
    "Filters",
    "Novelty",
)
_EXTRA_COLUMNS = ("logP", "SA", "QED", "weight", "KL")
_BASELINE_NAMES = {"unique@1000": "unique@1k", "unique@10000": "unique@10k"}
_PROPERTY_PANELS = (
    ("logP", "logP"),
    ("SA", "SA score"),
    ("QED", "QED"),
    ("weight", "molecular weight"),
)
_GRID_SIZE = 24


def run_benchmark(
    generated: Sequence[str] | str | os.PathLike,
    reference: str | os.PathLike | Sequence[str] = "moses-test",
    train: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    baselines: bool = True,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    label: str = "molgen",
    references: Sequence[str | os.PathLike] | None = None,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
    show_progress: bool = False,
) -> dict:
    """Score ``generated`` against ``reference`` and, with ``out_dir``, write the report.

    Args:
        generated, reference, train, n_jobs, device, batch_size, cache_dir,
        intdiv_exact_max: as for :func:`molgen.metrics.compute_metrics`.
        references: several references (names or files) scored in one pass,
            sharing the generated-side work; replaces ``reference``. Their
            metric keys must differ (``moses-test`` and
            ``moses-test-scaffolds`` do: ``/Test`` and ``/TestSF``).
        out_dir: report folder (created); ``None`` writes nothing.
        baselines: put the MOSES baseline rows in ``metrics.md`` (only for
            the named MOSES references).
        seed: picks the molecules of the grid image.
        label: name of our row in the table.
        show_progress: a progress line (rate, ETA) for each long step on stderr.

    Returns:
        ``{"metrics", "reference", "seconds", "files"}``; ``files`` lists the
        written paths.

    Raises:
        DataError: as :func:`molgen.metrics.compute_metrics`.
    """
    start = time.perf_counter()
    refs = [reference] if references is None else list(references)
    _check_suffixes(refs)
    results = evaluate_many(generated, refs, train, n_jobs, device, batch_size, cache_dir, intdiv_exact_max, show_progress)
    return _report(results, refs, references is None, start, out_dir, baselines, seed, label)


def run_benchmark_shard(
    generated: Sequence[str] | str | os.PathLike,
    shard: ShardSpec,
    out_path: str | os.PathLike,
    references: Sequence[str | os.PathLike] = ("moses-test",),
    train: Sequence[str] | None = None,
    job: dict | None = None,
    label: str = "molgen",
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PartialStatistics:
    """Do one shard's part of a benchmark and save its statistics to ``out_path`` (``.npz``).

    ``generated`` holds this shard's samples only (e.g. ``shard.select(all_samples)``).
    Every shard of a job must use the same references, training set and
    ``job`` settings; :func:`merge_benchmark` checks that. ``label`` names
    the row of the merged report. See :mod:`molgen.metrics.partial` for what
    is saved.
    """
    _check_suffixes(references)
    part = compute_partial(
        generated, references, (shard.index, shard.count), train, job, n_jobs, device, batch_size, cache_dir
    )
    part.meta["label"] = label
    part.save(out_path)
    return part


def merge_benchmark(
    parts: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike | None = None,
    references: Sequence[str | os.PathLike] | None = None,
    baselines: bool = True,
    n_jobs: int | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    seed: int = 0,
    label: str | None = None,
    intdiv_exact_max: int | None = INTDIV_EXACT_MAX,
) -> dict:
    """Combine every shard's statistics into the report one run over all samples writes.

    Args:
        parts: the ``.npz`` files of all shards (any order).
        references: where the reference sets are now, if they moved
            (default: the names the shards used).
        label: our row's name (default: the one the shards recorded).
        out_dir, baselines, n_jobs, device, batch_size, cache_dir, seed,
            intdiv_exact_max: as for :func:`run_benchmark`.
    """
    start = time.perf_counter()
    loaded = [PartialStatistics.load(p) for p in parts]
    results = merge_partials(loaded, references, n_jobs, device, batch_size, cache_dir, intdiv_exact_max)
    first = min(loaded, key=lambda p: p.meta["shard"]).meta
    names = [r["name"] for r in first["references"]]
    label = label or first.get("label") or "molgen"
    report = _report(results, names, len(names) == 1, start, out_dir, baselines, seed, label)
    report["shards"] = first["of"]
    return report


def _intdiv_note(metrics: dict) -> list[str]:
    if "intdiv_rows" not in metrics:
        return []
    return [
        f"IntDiv and IntDiv2 are estimated from {int(metrics['intdiv_rows']):,} sampled molecules, each against all "
        f"{int(metrics['n_valid']):,} (standard errors {metrics['IntDiv_stderr']:.1e} and {metrics['IntDiv2_stderr']:.1e}); "
        "--intdiv-exact-max 0 computes every pair."
    ]


def _check_suffixes(refs: Sequence[object]) -> list[str]:
    suffixes = [reference_suffix(r) for r in refs]
    if len(set(suffixes)) < len(suffixes):
        raise ConfigError(
            "these references would report under the same metric names "
            f"({', '.join(suffixes)}); score custom reference files one at a time"
        )
    return suffixes


def _report(
    results: list[Evaluation],
    refs: Sequence[object],
    single: bool,
    start: float,
    out_dir: str | os.PathLike | None,
    baselines: bool,
    seed: int,
    label: str,
) -> dict:
    """The report dict, and with ``out_dir`` the report folder."""
    suffixes = [reference_suffix(r) for r in refs]
    result = results[0]
    names = [str(r) if isinstance(r, (str, os.PathLike)) else f"{len(r)} SMILES" for r in refs]
    report = {
        "metrics": merge_metrics(results, suffixes),
        "reference": names[0] if single else names,
        "seconds": round(time.perf_counter() - start, 2),
        "files": [],
    }
    if out_dir is None:
        return report
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = [
        _markdown(
            r.metrics, suffix, load_baselines(suffix) if baselines and _is_moses(ref) else [], label
        )
        for r, ref, suffix in zip(results, refs, suffixes, strict=True)
    ]
    files = {  # each writer returns the path it wrote, or None for a picture this machine cannot draw
        "metrics.md": lambda p: atomic_write_text(p, "\n".join(tables)) or p,
        "properties.png": lambda p: _plot_properties(result, p) or p,
        "molecules.png": lambda p: _plot_molecules(result.valid_smiles, p, seed),
    }
    # metrics.json goes last, and an older one goes first: a folder holding it is a complete report.
    (out / "metrics.json").unlink(missing_ok=True)
    for name, write in files.items():
        (out / name).unlink(missing_ok=True)  # no stale picture beside a new report
        if write(out / name) is not None:
            report["files"].append(str(out / name))
    report["files"].insert(0, str(out / "metrics.json"))
    atomic_write_text(out / "metrics.json", json.dumps(_json_safe(report), indent=2) + "\n")
    return report


def load_baselines(suffix: str = "Test") -> list[dict[str, float | str]]:
    """MOSES baseline rows as ``{"model": name, column: value}``, for ``Test`` or ``TestSF``.

    Only FCD has a published scaffold-test column; the other similarity
    columns are missing (NaN) for ``TestSF``.
    """
    text = (resources.files("molgen.metrics") / "data" / "moses_baselines.csv").read_text(
        encoding="utf-8"
    )
    rows = []
    for record in csv.DictReader(text.splitlines()):
        row: dict[str, float | str] = {"model": record["model"]}
        for column in MAIN_COLUMNS:
            key = _BASELINE_NAMES.get(column, column)
            if column in ("FCD", "SNN", "Frag", "Scaf"):
                key = f"{column}/{suffix}"
            row[column] = float(record[key]) if record.get(key) else math.nan
        rows.append(row)
    return rows


def _is_moses(reference: object) -> bool:
    return reference in ("moses-test", "moses-test-scaffolds")


def _markdown(metrics: dict[str, float], suffix: str, baselines: list[dict], label: str) -> str:
    ours = {"model": f"**{label}**"}
    for column in MAIN_COLUMNS:
        key = f"{column}/{suffix}" if column in ("FCD", "SNN", "Frag", "Scaf") else column
        ours[column] = metrics.get(key, math.nan)
        if column.startswith("unique@") and metrics.get("n_generated", 0) < int(column.split("@")[1]):
            ours[column] = math.nan  # a sample smaller than k: metrics.json keeps MOSES's value, the table shows none
    header = [
        "model",
        *[c if c not in ("FCD", "SNN", "Frag", "Scaf") else f"{c}/{suffix}" for c in MAIN_COLUMNS],
    ]
    lines = [
        f"# Benchmark against the {'MOSES ' if baselines else ''}{suffix} reference",
        "",
        f"{int(metrics['n_generated'])} generated, {int(metrics['n_valid'])} valid; "
        f"FCD from {int(metrics['fcd_sample_size'])} generated vs {int(metrics['fcd_reference_size'])} "
        "reference molecules (FCD is biased upwards for small samples: compare only at equal sample size).",
        *_intdiv_note(metrics),
        "",
        _table(header, [ours, *baselines], ["model", *MAIN_COLUMNS]),
        "",
        "Distribution distances (Wasserstein-1 of logP, SA, QED, molecular weight; lower is better) "
        "and the GuacaMol KL-divergence score (higher is better):",
        "",
        _table(
            ["model", *_EXTRA_COLUMNS],
            [{"model": f"**{label}**", **metrics}],
            ["model", *_EXTRA_COLUMNS],
        ),
    ]
    if baselines:
        lines += [
            "",
            "Baseline rows: MOSES README (Polykovskiy et al. 2020), 30,000 samples per model; — = not published.",
        ]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[dict], keys: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["model"]] + [_cell(row.get(k, math.nan)) for k in keys[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: float) -> str:
    return (
        "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
    )


def _plot_properties(result: Evaluation, path: Path) -> None:
    # A Figure without pyplot (no backend machinery to import), and one filled outline per histogram
    # rather than 50 bar patches: the picture took 1.5 of a warm benchmark's 10.8 s on 1,000 molecules.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 3.6))
    axes = fig.subplots(1, 4)
    for column, (ax, (_, title)) in enumerate(zip(axes, _PROPERTY_PANELS, strict=True)):
        ref = result.reference.properties[:, column]
        gen = result.generated.properties[:, column]
        bins = np.histogram_bin_edges(np.concatenate([ref, gen]), bins=50)
        sides = (
            (ref, result.reference.counts, f"reference (n={result.reference.n_molecules:,})"),
            (gen, result.generated.counts, f"generated (n={result.generated.n_molecules:,} valid)"),
        )
        for values, counts, label in sides:
            ax.hist(values, bins=bins, weights=counts, density=True, alpha=0.5, label=label, histtype="stepfilled")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    with atomic_output(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)


def _plot_molecules(smiles: list[str], path: Path, seed: int) -> Path | None:
    from molgen.viz import molecule_grid

    distinct = sorted(set(smiles))
    chosen = random.Random(seed).sample(distinct, min(_GRID_SIZE, len(distinct)))
    return molecule_grid(chosen, path, per_row=6, required=False)


def _json_safe(value: object) -> object:
    """NaN becomes ``null`` (JSON has no NaN); NumPy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value
