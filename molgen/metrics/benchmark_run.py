"""One benchmark run as a typed config: what ``molgen benchmark --config benchmark.toml`` reads.

:class:`BenchmarkConfig` names the samples (a model to sample, or a file of
generated SMILES), the reference sets, the training set for novelty and the
shard; :func:`run_benchmark_request` samples if needed and writes the MOSES
report (or, with ``shard``, one part's statistics for ``molgen merge``). The
command is these three lines:

    >>> from molgen.metrics.benchmark_run import BenchmarkConfig, run_benchmark_request   # doctest: +SKIP
    >>> outcome = run_benchmark_request(BenchmarkConfig(n=1000, output="report"), log=print)  # doctest: +SKIP
    >>> print(outcome.report["metrics"]["moses-test"]["valid"])                              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from molgen.config import ConfigMixin
from molgen.errors import ConfigError, DataError

__all__ = ["BenchmarkConfig", "BenchmarkOutcome", "run_benchmark_request", "named_training_set"]


@dataclass
class BenchmarkConfig(ConfigMixin):
    """Every setting of one benchmark run (see ``configs/benchmark.toml``)."""

    _config_label = "benchmark config"

    output: str = "report"  # report folder (metrics.json, metrics.md, plots); with shard: the part's .npz or its folder
    model: str | None = None  # sampled when generated is not given (None: the default model)
    generated: str | None = None  # score this file of generated SMILES instead of sampling (every line counts)
    n: int = 30000  # molecules to sample from the model
    reference: list[str] = field(default_factory=lambda: ["moses-test"])  # moses-test, moses-test-scaffolds or SMILES files
    train: str | None = None  # novelty: moses-train or a SMILES file (None: what the checkpoint remembers)
    temperature: float | None = None  # None: the model's own
    top_p: float = 1.0
    prior: Literal["auto", "standard", "fitted"] = "auto"
    seed: int = 0
    n_jobs: int | None = None  # RDKit worker processes (None: all CPUs)
    device: str = "auto"
    shard: str | None = None  # "i/N": this part of the job only; combine with molgen merge
    intdiv_exact_max: int = 100_000  # IntDiv over every pair up to this many molecules (0: always every pair)

    def __post_init__(self) -> None:
        if self.intdiv_exact_max < 0:
            raise ConfigError(f"--intdiv-exact-max must be 0 (every pair) or a number of molecules, got {self.intdiv_exact_max}")
        if self.generated is None and self.n < 1:
            raise ConfigError(f"-n must be at least 1 molecule to sample, not {self.n}")


@dataclass
class BenchmarkOutcome:
    """What a run wrote: the report (whole runs) or the part (shards), and where."""

    path: Path
    report: dict[str, Any] | None = None
    part: Any = None


def named_training_set(name: str) -> list[str] | None:
    """``moses-train``: the cached MOSES training set (canonical already, read without re-parsing); else None."""
    if name != "moses-train":
        return None
    import gzip

    from molgen.datasets import moses_split

    with gzip.open(moses_split("train"), "rt") as fh:
        return [line.strip() for line in fh][1:]  # the first line is the header


def run_benchmark_request(
    config: BenchmarkConfig, train: list[str] | None = None, show_progress: bool = True, log: Callable[[str], None] | None = None
) -> BenchmarkOutcome:
    """Sample ``config.model`` (or read ``config.generated``) and score it; ``log`` gets one line per step.

    ``train``: the training molecules for novelty, already read (overrides ``config.train``).
    """
    from molgen.utils.io import RunLock
    from molgen.utils.runtime import resolve_device
    from molgen.utils.shards import parse_shard

    log = log or (lambda line: None)
    spec = parse_shard(config.shard) if config.shard is not None else None
    if train is None and config.train is not None:
        train = named_training_set(config.train)
        if train is None:
            from molgen.datasets import read_molecules

            train = read_molecules(config.train).smiles
        log(f"novelty against {'the MOSES training set' if config.train == 'moses-train' else config.train} ({len(train):,} molecules)")
    output, device = Path(config.output), str(resolve_device(config.device))
    # Shards write one .npz each (atomically), so they share an output folder without a lock.
    with RunLock(output) if spec is None else contextlib.nullcontext():
        gen, label, job, train = _samples(config, spec, train, log)
        if spec is not None:
            return _benchmark_part(config, gen, spec, train, job, label, device, log)
        from molgen.metrics.benchmark import run_benchmark

        report = run_benchmark(
            gen, train=train, out_dir=output, n_jobs=config.n_jobs, device=device, seed=config.seed, label=label,
            references=config.reference, intdiv_exact_max=config.intdiv_exact_max or None, show_progress=show_progress,
        )
    log(f"scored in {report['seconds']:.1f} s; report in {output}/")
    return BenchmarkOutcome(output, report=report)


def _samples(config: BenchmarkConfig, spec, train, log) -> tuple[Any, str, dict, list[str] | None]:
    """The molecules to score -> (samples or file, label of our row, shard job record, training set)."""
    if config.generated is not None:
        generated = Path(config.generated)
        gen, label, job = generated, generated.stem, {}
        if spec is not None:
            gen, job = _generated_part(generated, spec, log)
            if "parts_of" in job:  # sample-3.smi -> sample: one name for the parts' row
                label = re.sub(r"[-_.]?\d+$", "", label) or label
        return gen, label, job, train
    from molgen.generate.prior import uses_fitted_prior
    from molgen.utils.shards import file_digest
    from molgen.vae import MoleculeVAE, resolve_model_path, training_smiles

    vae = MoleculeVAE.load(config.model, device=config.device)
    temperature = vae.default_temperature if config.temperature is None else config.temperature
    start = time.perf_counter()
    n_here, seed_here = (spec.size(config.n), spec.seed(config.seed)) if spec is not None else (config.n, config.seed)
    samples = vae.sample(n_here, temperature=temperature, seed=seed_here, top_p=config.top_p, prior=config.prior)
    used_prior = "fitted" if uses_fitted_prior(vae, config.prior) else "N(0, I)"
    log(f"sampled {n_here:,} molecules in {time.perf_counter() - start:.1f} s (temperature {temperature:g}, {used_prior} prior)")
    if train is None:
        train = training_smiles(vae)
        if train is None:
            warnings.warn("the checkpoint's training set is not available; novelty is not computed (pass --train)", stacklevel=3)
    label = f"{Path(vae.meta.get('path', 'model')).stem} (T {temperature:g}, {used_prior} prior)"
    job = {}
    if spec is not None:
        job = dict(model=file_digest(resolve_model_path(config.model)), n=config.n, seed=config.seed, temperature=temperature,
                   top_p=config.top_p, prior=config.prior)  # fmt: skip
    return [s or "" for s in samples], label, job, train


def _generated_part(generated: Path, spec, log) -> tuple[list[str], dict]:
    """Shard ``spec``'s samples: the whole file if it is that part of a sharded sample job, else its block of lines."""
    from molgen.metrics import load_generated
    from molgen.utils.shards import file_digest, read_sidecar, sidecar_path

    if not sidecar_path(generated).is_file():
        return list(spec.select(load_generated(generated))), {"generated": file_digest(generated)}
    record = read_sidecar(generated)
    if (record["shard"], record["of"]) != (spec.index, spec.count):
        raise ConfigError(f"{generated} is part {record['shard']}/{record['of']} of a sharded job (its .shard.json says so), not {spec}; pass the matching part")
    if file_digest(generated) != record["sha256"]:
        raise DataError(f"{generated} changed after its shard wrote it; run that shard again")
    log(f"{generated} is part {spec} of a sharded {record['job'].get('command', '')} job: scoring all of it")
    return load_generated(generated), {"parts_of": record["job"]}


def _benchmark_part(config: BenchmarkConfig, gen, spec, train, job: dict, label: str, device: str, log) -> BenchmarkOutcome:
    from molgen.metrics.benchmark import run_benchmark_shard

    output = Path(config.output)
    path = output if output.suffix == ".npz" else output / f"{spec.file_tag()}.npz"
    start = time.perf_counter()
    part = run_benchmark_shard(
        gen, spec, path, config.reference, train, dict(job, command="benchmark"), label, n_jobs=config.n_jobs, device=device
    )
    log(
        f"shard {spec}: {part.n_generated:,} samples, {part.n_valid:,} valid, {len(part.smiles):,} distinct; "
        f"statistics in {path} ({time.perf_counter() - start:.1f} s); when every shard is done: molgen merge {path.parent}/ -o REPORT"
    )
    return BenchmarkOutcome(path, part=part)
