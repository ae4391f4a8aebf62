"""``molgen benchmark``, ``score`` and ``merge``."""

from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli._common import (
    INTDIV_HELP,
    MODEL_HELP,
    PRIOR_HELP,
    REJECTS_HELP,
    SHARD_HELP,
    STRICT_HELP,
    TEMPERATURE_HELP,
    _read,
)
from molgen.console import err, note, out, warn
from molgen.errors import ConfigError, DataError
from molgen.utils.threads import set_torch_threads


@app.command()
def benchmark(
    output: Path = typer.Option(Path("report"), "-o", "--output", help="report folder: metrics.json, metrics.md, plots"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP + "; sampled when --generated is not given"),
    generated: Optional[Path] = typer.Option(None, help="score this file of generated SMILES instead of sampling (every line counts)"),
    n: int = typer.Option(30000, "-n", help="molecules to sample from --model"),
    reference: list[str] = typer.Option(["moses-test"], help="moses-test, moses-test-scaffolds or a SMILES file; repeat to score against several in one pass (as MOSES does with test and scaffold test)"),
    train_file: Optional[Path] = typer.Option(None, "--train", help="training set for novelty: moses-train (the cached MOSES training set) or a SMILES file (default: what the checkpoint remembers)"),
    temperature: Optional[float] = typer.Option(None, help=TEMPERATURE_HELP),
    top_p: float = typer.Option(1.0, help="nucleus sampling threshold (1: off), as in molgen sample"),
    prior: str = typer.Option("auto", help=PRIOR_HELP),
    seed: int = typer.Option(0),
    n_jobs: Optional[int] = typer.Option(None, help="worker processes for RDKit work (default: all CPUs)"),
    device: str = typer.Option("auto"),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
    strict: bool = typer.Option(False, help=STRICT_HELP + "; applies to --train (every line of --generated is a sample)"),
    rejects: Optional[Path] = typer.Option(None, help=REJECTS_HELP + "; for --train"),
    shard: Optional[str] = typer.Option(
        None,
        help=SHARD_HELP + ": score shard i's lines of --generated (all of it if it is part i of a sharded sample job), "
        "or sample as molgen sample --shard does; -o is then the part's .npz (or a folder for it)",
    ),
    intdiv_exact_max: int = typer.Option(100_000, help=INTDIV_HELP),
) -> None:
    """MOSES metrics of a model's samples (or of any file) against a reference set."""
    from molgen.metrics.benchmark import run_benchmark
    from molgen.utils.io import RunLock
    from molgen.utils.runtime import resolve_device
    from molgen.utils.shards import file_digest, parse_shard

    set_torch_threads(threads)
    intdiv_limit = _intdiv_limit(intdiv_exact_max)
    if generated is None and n < 1:
        raise ConfigError(f"-n must be at least 1 molecule to sample, not {n}")
    spec = parse_shard(shard) if shard is not None else None
    train = None
    if train_file is not None:
        train = _named_training_set(str(train_file)) or _read(train_file, None, strict, rejects)
    # Shards write one .npz each (atomically), so they share an output folder without a lock.
    with RunLock(output) if spec is None else _no_lock():
        if generated is None:
            from molgen.generate.prior import uses_fitted_prior
            from molgen.vae import MoleculeVAE, resolve_model_path, training_smiles

            vae = MoleculeVAE.load(model, device=device)
            if temperature is None:
                temperature = vae.default_temperature
            start = time.perf_counter()
            n_here, seed_here = (spec.size(n), spec.seed(seed)) if spec is not None else (n, seed)
            samples = vae.sample(n_here, temperature=temperature, seed=seed_here, top_p=top_p, prior=prior)
            used_prior = "fitted" if uses_fitted_prior(vae, prior) else "N(0, I)"
            err.print(f"sampled {n_here:,} molecules in {time.perf_counter() - start:.1f} s (temperature {temperature:g}, {used_prior} prior)")
            gen: list[str] | Path = [s or "" for s in samples]
            if train is None:
                train = training_smiles(vae)
                if train is None:
                    warn("the checkpoint's training set is not available; novelty is not computed (pass --train)", prefix="")
            label = f"{Path(vae.meta.get('path', 'model')).stem} (T {temperature:g}, {used_prior} prior)"
            job = dict(model=file_digest(resolve_model_path(model)), n=n, seed=seed, temperature=temperature, top_p=top_p, prior=prior) if spec else {}
        else:
            gen, label = generated, generated.stem
            if spec is not None:
                gen, job = _generated_part(generated, spec)
                if "parts_of" in job:  # sample-3.smi -> sample: one name for the parts' row
                    label = re.sub(r"[-_.]?\d+$", "", label) or label
        if spec is not None:
            _benchmark_part(gen, spec, output, reference, train, job, label, n_jobs, str(resolve_device(device)))
            return
        report = run_benchmark(
            gen, train=train, out_dir=output, n_jobs=n_jobs, device=str(resolve_device(device)), seed=seed, label=label,
            references=reference, intdiv_exact_max=intdiv_limit, show_progress=True,
        )
    out.print((output / "metrics.md").read_text(), highlight=False, markup=False)
    err.print(f"scored in {report['seconds']:.1f} s; report in {output}/")


def _named_training_set(name: str) -> list[str] | None:
    """``moses-train``: the cached MOSES training set (canonical already, read without re-parsing); else None."""
    if name != "moses-train":
        return None
    import gzip

    from molgen.datasets import moses_split

    with gzip.open(moses_split("train"), "rt") as fh:
        smiles = [line.strip() for line in fh][1:]  # the first line is the header
    note(f"novelty against the MOSES training set ({len(smiles):,} molecules)")
    return smiles


def _intdiv_limit(value: int) -> int | None:
    if value < 0:
        raise ConfigError(f"--intdiv-exact-max must be 0 (every pair) or a number of molecules, got {value}")
    return value or None


@contextmanager
def _no_lock():
    yield


def _generated_part(generated: Path, spec) -> tuple[list[str], dict]:
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
    note(f"{generated} is part {spec} of a sharded {record['job'].get('command', '')} job: scoring all of it")
    return load_generated(generated), {"parts_of": record["job"]}


def _benchmark_part(gen, spec, output: Path, reference: list[str], train, job: dict, label: str, n_jobs: int | None, device: str) -> None:
    from molgen.metrics.benchmark import run_benchmark_shard

    path = output if output.suffix == ".npz" else output / f"{spec.file_tag()}.npz"
    start = time.perf_counter()
    part = run_benchmark_shard(gen, spec, path, reference, train, dict(job, command="benchmark"), label, n_jobs=n_jobs, device=device)
    err.print(
        f"shard {spec}: {part.n_generated:,} samples, {part.n_valid:,} valid, {len(part.smiles):,} distinct; "
        f"statistics in {path} ({time.perf_counter() - start:.1f} s); when every shard is done: molgen merge {path.parent}/ -o REPORT"
    )


@app.command()
def score(
    input: Path = typer.Option(..., "--input", "-i", help="molecules to score (SMILES file)"),
    output: Path = typer.Option(Path("scores.csv"), "-o", "--output", help="CSV: one row per molecule"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    samples: int = typer.Option(32, help="importance samples z ~ q(z|x) per molecule"),
    reference: Optional[str] = typer.Option(
        "train", help="in-distribution molecules that set the flag threshold: 'train' (the checkpoint's training set), a SMILES file, or 'none'"
    ),
    reference_size: int = typer.Option(1000, help="reference molecules drawn (seeded) for the threshold"),
    flag_quantile: float = typer.Option(0.01, help="flag molecules scoring below this quantile of the reference"),
    flag_on: str = typer.Option("iw_ll_per_token", help="column the flag uses: iw_ll_per_token, iw_ll or elbo"),
    smiles_column: Optional[str] = typer.Option(None),
    batch_size: int = typer.Option(64, help="molecules per forward pass"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
    strict: bool = typer.Option(False, help=STRICT_HELP + "; applies to --input"),
    rejects: Optional[Path] = typer.Option(None, help=REJECTS_HELP + "; for --input"),
    shard: Optional[str] = typer.Option(None, help=SHARD_HELP + " (shard i scores its block of the molecules read from --input)"),
    strip_stereo: bool = typer.Option(False, help="read the molecules with stereochemistry dropped, as the global --drop-stereo (for models trained without it, e.g. on MOSES); counted"),
) -> None:
    """Per-molecule ELBO and importance-weighted log-likelihood; flag molecules unlike the training data."""
    import numpy as np

    from molgen.utils.io import atomic_output
    from molgen.utils.progress import progress_bar
    from molgen.utils.shards import (
        file_digest,
        parse_shard,
        sidecar_path,
        write_sidecar,
    )
    from molgen.vae import MoleculeVAE, resolve_model_path, training_smiles
    from molgen.vae.likelihood import flag_threshold, score_molecules

    if flag_on not in ("iw_ll_per_token", "iw_ll", "elbo"):
        raise ConfigError(f"--flag-on must be iw_ll_per_token, iw_ll or elbo, not {flag_on!r}")
    set_torch_threads(threads)
    spec = parse_shard(shard) if shard is not None else None
    if spec is not None:
        sidecar_path(output).unlink(missing_ok=True)  # a part without its record is unfinished
    vae = MoleculeVAE.load(model, device=device)
    smiles = _read(input, smiles_column, strict, rejects, stereo="drop" if strip_stereo else None)
    n_read = len(smiles)
    if spec is not None:
        # Every shard reads the same molecules, so the blocks tile the input; the
        # reference threshold below uses --seed itself, so it is the same in every shard.
        smiles = list(spec.select(smiles))
    ref: list[str] | None = None
    if reference and reference.lower() != "none":
        ref = training_smiles(vae) if reference == "train" else _read(Path(reference), None, False, None, stereo="drop" if strip_stereo else None)
        if ref is None:
            warn("the checkpoint's training set is not available; no flags (pass --reference FILE)", prefix="")
        else:
            ref = [ref[i] for i in np.random.default_rng(seed).permutation(len(ref))[:reference_size]]
    total = len(smiles) + (len(ref) if ref else 0)
    with progress_bar(total, "scoring", unit="mol") as bar:
        threshold = None
        if ref:
            ref_scores = score_molecules(vae, ref, samples, batch_size, seed, progress=bar, strip_stereo=strip_stereo)
            threshold = flag_threshold(ref_scores[flag_on], flag_quantile)
        frame = score_molecules(
            vae, smiles, samples, batch_size, seed if spec is None else spec.seed(seed), progress=bar, strip_stereo=strip_stereo
        )
    if threshold is not None:
        # Molecules the model cannot spell (NaN score) are as far from the training data as it gets.
        frame["flagged"] = ~(frame[flag_on] >= threshold)
    with atomic_output(output, "w") as fh:
        frame.to_csv(fh, index=False, float_format="%.4f")
    if spec is not None:
        job = dict(
            command="score", input=file_digest(input), molecules=n_read, model=file_digest(resolve_model_path(model)), samples=samples,
            seed=seed, reference=_reference_identity(reference), reference_size=reference_size, flag_quantile=flag_quantile, flag_on=flag_on,
            smiles_column=smiles_column, strict=strict, batch_size=batch_size, strip_stereo=strip_stereo,
        )  # fmt: skip
        write_sidecar(output, spec, job, rows=len(frame), header=True, shard_seed=spec.seed(seed))
    unscorable = int((frame["status"] != "ok").sum())
    msg = f"scored {len(frame) - unscorable:,} molecules (K={samples}); median IW log-likelihood {frame['iw_ll'].median():.2f} nats"
    if unscorable:
        msg += f"; {unscorable:,} not representable by this model ({', '.join(sorted(set(frame['status']) - {'ok'}))})"
        stereo = sum(1 for text in frame["smiles"] if "@" in str(text) or "/" in str(text) or "\\" in str(text))
        if stereo and not strip_stereo:
            msg += f"; {stereo:,} input(s) carry stereochemistry: --strip-stereo scores them without it"
    if threshold is not None:
        msg += f"; flagged {int(frame['flagged'].sum()):,} below {flag_on} {threshold:.3f} (the {flag_quantile:g} quantile of {len(ref):,} reference molecules)"
    err.print(msg + f"; wrote {output}")


def _reference_identity(reference: str | None) -> str | None:
    """A score reference as the shards must agree on it: a file by its content."""
    from molgen.utils.shards import file_digest

    if reference is None or reference.lower() in ("train", "none"):
        return reference
    return f"sha256:{file_digest(reference)}" if Path(reference).is_file() else reference


@app.command()
def merge(
    parts: list[Path] = typer.Argument(..., help="every shard's output (any order), or the folder holding them"),
    output: Path = typer.Option(..., "-o", "--output", help="merged .smi/.csv file; for benchmark parts (.npz) the report folder"),
    unique: bool = typer.Option(False, help="SMILES/CSV parts: keep only the first line of each molecule"),
    reference: Optional[list[str]] = typer.Option(None, help="benchmark parts: where each reference set is now, if it moved (same order)"),
    label: Optional[str] = typer.Option(None, help="benchmark parts: name of our row in the table (default: the shards' label)"),
    seed: int = typer.Option(0, help="benchmark parts: picks the molecules of the grid image"),
    n_jobs: Optional[int] = typer.Option(None, help="worker processes for RDKit work (default: all CPUs)"),
    device: str = typer.Option("auto"),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
    intdiv_exact_max: int = typer.Option(100_000, help=INTDIV_HELP),
) -> None:
    """Combine the outputs of a --shard job once every shard has finished.

    SMILES/CSV parts (molgen sample/score --shard) are concatenated in shard
    order; benchmark parts (.npz from molgen benchmark --shard) become the
    report a single run over all samples writes. Refuses a missing, repeated,
    changed or foreign part.
    """
    from molgen.utils.shards import collect_parts, merge_text_parts

    set_torch_threads(threads)
    intdiv_limit = _intdiv_limit(intdiv_exact_max)
    found = collect_parts(parts, suffixes=(".npz",))
    kinds = {p.suffix == ".npz" for p in found}
    if len(kinds) > 1:
        raise DataError("these parts mix benchmark statistics (.npz) and text outputs; merge one job at a time")
    if kinds.pop():
        from molgen.metrics.benchmark import merge_benchmark
        from molgen.utils.io import RunLock
        from molgen.utils.runtime import resolve_device

        with RunLock(output):
            report = merge_benchmark(
                found, output, reference or None, n_jobs=n_jobs, device=str(resolve_device(device)), seed=seed,
                label=label, intdiv_exact_max=intdiv_limit,
            )
        out.print((output / "metrics.md").read_text(), highlight=False, markup=False)
        err.print(f"merged {report['shards']} benchmark parts in {report['seconds']:.1f} s; report in {output}/")
        return
    merged = merge_text_parts(found, output, unique=unique)
    dropped = f" ({merged.duplicates_dropped:,} repeated molecules dropped)" if unique else ""
    err.print(f"merged {merged.parts} parts of a {merged.job.get('command', 'molgen')} job: {merged.rows:,} rows{dropped} in {output}")


