"""``molgen benchmark``, ``score`` and ``merge``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli._common import PRIOR_HELP, TEMPERATURE_HELP, _read
from molgen.cli.options import (
    MODEL_HELP,
    REJECTS_HELP,
    SHARD_HELP,
    STRICT_HELP,
    ConfigFile,
    DeviceOpt,
    IntDivOpt,
    ModelOpt,
    NJobsOpt,
    OutputOpt,
    RejectsOpt,
    SeedOpt,
    ShardOpt,
    SmilesColumnOpt,
    StrictOpt,
    ThreadsOpt,
    described,
    settings_from,
)
from molgen.console import err, out
from molgen.errors import ConfigError, DataError
from molgen.utils.threads import set_torch_threads

#: benchmark's flags -> their place in BenchmarkConfig (molgen.metrics.benchmark_run).
_BENCHMARK_FLAGS = {
    name: name
    for name in ("output", "model", "generated", "n", "reference", "temperature", "top_p", "prior", "seed", "n_jobs", "device", "shard", "intdiv_exact_max")
} | {"train_file": "train"}


@app.command()
def benchmark(
    ctx: typer.Context,
    config: ConfigFile = None,
    output: described(OutputOpt, "report folder: metrics.json, metrics.md, plots") = Path("report"),
    model: described(ModelOpt, MODEL_HELP + "; sampled when --generated is not given") = None,
    generated: Optional[Path] = typer.Option(None, help="score this file of generated SMILES instead of sampling (every line counts)"),
    n: int = typer.Option(30000, "-n", help="molecules to sample from --model"),
    reference: list[str] = typer.Option(["moses-test"], help="moses-test, moses-test-scaffolds or a SMILES file; repeat to score against several in one pass (as MOSES does with test and scaffold test)"),
    train_file: Optional[str] = typer.Option(None, "--train", help="training set for novelty: moses-train (the cached MOSES training set) or a SMILES file (default: what the checkpoint remembers)"),
    temperature: Optional[float] = typer.Option(None, help=TEMPERATURE_HELP),
    top_p: float = typer.Option(1.0, help="nucleus sampling threshold (1: off), as in molgen sample"),
    prior: str = typer.Option("auto", help=PRIOR_HELP),
    seed: SeedOpt = 0,
    n_jobs: NJobsOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    strict: described(StrictOpt, STRICT_HELP + "; applies to --train (every line of --generated is a sample)") = False,
    rejects: described(RejectsOpt, REJECTS_HELP + "; for --train") = None,
    shard: described(
        ShardOpt,
        SHARD_HELP + ": score shard i's lines of --generated (all of it if it is part i of a sharded sample job), "
        "or sample as molgen sample --shard does; -o is then the part's .npz (or a folder for it)",
    ) = None,
    intdiv_exact_max: IntDivOpt = 100_000,
) -> None:
    """MOSES metrics of a model's samples (or of any file) against a reference set.

    With --config FILE.toml (example: configs/benchmark.toml) the file gives the settings and typed flags override it.
    """
    from molgen.metrics.benchmark_run import BenchmarkConfig, run_benchmark_request

    settings = settings_from(ctx, BenchmarkConfig, config, _BENCHMARK_FLAGS)
    set_torch_threads(threads)
    train = None
    if settings.train is not None and settings.train != "moses-train":  # a file: read under the input policy
        train = _read(Path(settings.train), None, strict, rejects)
    outcome = run_benchmark_request(settings, train=train, log=err.print)
    if outcome.report is not None:
        out.print((outcome.path / "metrics.md").read_text(), highlight=False, markup=False)


def _intdiv_limit(value: int) -> int | None:
    if value < 0:
        raise ConfigError(f"--intdiv-exact-max must be 0 (every pair) or a number of molecules, got {value}")
    return value or None


@app.command()
def score(
    input: Path = typer.Option(..., "--input", "-i", help="molecules to score (SMILES file)"),
    output: described(OutputOpt, "CSV: one row per molecule") = Path("scores.csv"),
    model: ModelOpt = None,
    samples: int = typer.Option(32, help="importance samples z ~ q(z|x) per molecule"),
    reference: Optional[str] = typer.Option(
        "train", help="in-distribution molecules that set the flag threshold: 'train' (the checkpoint's training set), a SMILES file, or 'none'"
    ),
    reference_size: int = typer.Option(1000, help="reference molecules drawn (seeded) for the threshold"),
    flag_quantile: float = typer.Option(0.01, help="flag molecules scoring below this quantile of the reference"),
    flag_on: str = typer.Option("iw_ll_per_token", help="column the flag uses: iw_ll_per_token, iw_ll or elbo"),
    smiles_column: SmilesColumnOpt = None,
    batch_size: int = typer.Option(64, help="molecules per forward pass"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    strict: described(StrictOpt, STRICT_HELP + "; applies to --input") = False,
    rejects: described(RejectsOpt, REJECTS_HELP + "; for --input") = None,
    shard: described(ShardOpt, SHARD_HELP + " (shard i scores its block of the molecules read from --input)") = None,
    strip_stereo: bool = typer.Option(False, help="read the molecules with stereochemistry dropped, as the global --drop-stereo (for models trained without it, e.g. on MOSES); counted"),
) -> None:
    """Per-molecule ELBO and importance-weighted log-likelihood; flag molecules unlike the training data."""
    from molgen.utils.shards import parse_shard, sidecar_path, write_sidecar
    from molgen.vae import MoleculeVAE
    from molgen.vae.flagging import FLAG_COLUMNS, score_and_flag

    if flag_on not in FLAG_COLUMNS:
        raise ConfigError(f"--flag-on must be iw_ll_per_token, iw_ll or elbo, not {flag_on!r}")
    set_torch_threads(threads)
    spec = parse_shard(shard) if shard is not None else None
    if spec is not None:
        sidecar_path(output).unlink(missing_ok=True)  # a part without its record is unfinished
    vae = MoleculeVAE.load(model, device=device)
    stereo = "drop" if strip_stereo else None
    smiles = _read(input, smiles_column, strict, rejects, stereo=stereo)
    # Every shard reads the same molecules, so the blocks tile the input; the reference uses --seed itself.
    mine = list(spec.select(smiles)) if spec is not None else smiles
    ref = _read(Path(reference), None, False, None, stereo=stereo) if reference and reference.lower() not in ("train", "none") else reference
    scored = score_and_flag(
        vae, mine, ref, samples, batch_size, seed, reference_size, flag_quantile, flag_on, strip_stereo,
        score_seed=spec.seed(seed) if spec is not None else None, show_progress=True,
    )  # fmt: skip
    scored.write(output)
    if spec is not None:
        job = _score_job(input, len(smiles), model, samples, seed, reference, reference_size, flag_quantile, flag_on, smiles_column, strict, batch_size, strip_stereo)
        write_sidecar(output, spec, job, rows=len(scored.frame), header=True, shard_seed=spec.seed(seed))
    err.print(scored.summary() + f"; wrote {output}")


def _score_job(input, n_read, model, samples, seed, reference, reference_size, flag_quantile, flag_on, smiles_column, strict, batch_size, strip_stereo) -> dict:  # noqa: PLR0913 - the job's settings, as the shards must agree on them
    """What every shard of a score job must agree on (molgen merge checks it)."""
    from molgen.utils.shards import file_digest
    from molgen.vae import resolve_model_path

    return dict(
        command="score", input=file_digest(input), molecules=n_read, model=file_digest(resolve_model_path(model)), samples=samples,
        seed=seed, reference=_reference_identity(reference), reference_size=reference_size, flag_quantile=flag_quantile, flag_on=flag_on,
        smiles_column=smiles_column, strict=strict, batch_size=batch_size, strip_stereo=strip_stereo,
    )  # fmt: skip


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
    n_jobs: NJobsOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    intdiv_exact_max: IntDivOpt = 100_000,
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


