"""``molgen sample``, ``fit-prior``, ``tune-sampling`` and ``fit-steering``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli._common import (
    MODEL_HELP,
    PRIOR_HELP,
    SHARD_HELP,
    TEMPERATURE_HELP,
    _random_subset,
    _read,
    _warnings_to_console,
)
from molgen.cli.options import (
    ConfigFile,
    DeviceOpt,
    Flag,
    ModelOpt,
    RejectsOpt,
    SeedOpt,
    SmilesColumnOpt,
    StrictOpt,
    ThreadsOpt,
    set_path,
    settings_from,
)
from molgen.console import err, error, note, out, warn
from molgen.errors import ConfigError
from molgen.utils.threads import set_torch_threads

#: Where each flag of ``molgen sample`` goes in a SampleRequest (flags typed on the command line override --config).
SAMPLE_FLAGS: dict[str, Flag] = {
    "n": "n", "seed": "seed", "temperature": "temperature", "top_k": "top_k", "top_p": "top_p", "greedy": "greedy",
    "prior": "prior", "condition": "condition", "guidance": "guidance", "steer": "steering.predictor",
    "steer_strength": "steering.strength", "steer_candidates": "steering.candidates", "substructure": "design.substructure",
    "near": "design.near", "radius": "design.radius", "similarity": "design.similarity", "precision": "precision",
    "batch_size": "batch_size", "unique": "unique", "properties": "properties", "shard": "shard",
    "near_file": lambda data, path: set_path(data, "design.near", [*data.get("design", {}).get("near", []), *_read(path, None, False, None)]),
    "core_seeds": lambda data, path: set_path(data, "design.seeds", _read(path, None, False, None)),
}  # fmt: skip


@app.command()
def sample(
    ctx: typer.Context,
    config: ConfigFile = None,
    n: int = typer.Option(1000, "-n", help="number of molecules to draw from the prior"),
    output: Path = typer.Option(Path("samples.csv"), "-o", "--output", help=".csv (with columns) or .smi"),
    model: ModelOpt = None,
    temperature: Optional[float] = typer.Option(None, help=TEMPERATURE_HELP),
    top_k: int = typer.Option(0, help="sample among the k most likely tokens (0: all)"),
    top_p: float = typer.Option(1.0, help="nucleus sampling: sample among the most likely tokens that make up this much probability (1: all)"),
    prior: str = typer.Option("auto", help=PRIOR_HELP),
    greedy: bool = typer.Option(False, help="argmax decoding instead of sampling"),
    unique: bool = typer.Option(False, help="keep only the first occurrence of each molecule"),
    seed: SeedOpt = 0,
    batch_size: int = typer.Option(1024),
    device: DeviceOpt = "auto",
    grid: Optional[Path] = typer.Option(None, help="also draw the first 30 molecules into this PNG"),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default); capped at the cores the RDKit workers leave free while they run"),
    condition: Optional[str] = typer.Option(None, "--condition", help='property request for a conditional model, e.g. "logp=2.5,qed=0.8"'),
    guidance: float = typer.Option(1.0, help="classifier-free guidance weight for models trained with --condition-dropout (1: none; 2-3 follow the condition more closely, at twice the decoding cost)"),
    steer: Optional[Path] = typer.Option(None, help="prefix property predictor from `molgen fit-steering`: steer every token towards --condition (any model)"),
    steer_strength: float = typer.Option(1.0, help="weight of the predictor's log-likelihood in each step (with --steer)"),
    steer_candidates: int = typer.Option(1, help="decode K steered molecules per sample and keep the one the predictor finds most likely to meet --condition (K times the decoding cost)"),
    shard: Optional[str] = typer.Option(None, help=SHARD_HELP + " (shard i draws its share of -n with a seed derived from --seed and i)"),
    precision: str = typer.Option("auto", help="decoder arithmetic: auto (bf16 on CPUs with AVX512-BF16/AMX, else fp32), fp32, bf16 or fp16 (CUDA)"),
    properties: bool = typer.Option(True, "--properties/--no-properties", help="CSV output: add mw, logp, qed, sa, tpsa, hbd, hba, rings, alerts_ok (no QED/Brenk structural alert) and novel (not in the model's training set)"),
    substructure: list[str] = typer.Option([], "--substructure", help="SMARTS every molecule must contain (repeatable); -n then counts distinct molecules written"),
    core_seeds: Optional[Path] = typer.Option(None, help="with --substructure: molecules to start from (besides training molecules with the core)"),
    near: list[str] = typer.Option([], "--near", help="sample around this lead molecule (repeatable); output sorted by similarity"),
    near_file: Optional[Path] = typer.Option(None, help="file of lead molecules to sample around"),
    radius: Optional[float] = typer.Option(None, help="with --near: how far from a lead's code, in units of the training codes' spread (default 0.5, or adapted to --similarity)"),
    similarity: Optional[str] = typer.Option(None, help="with --near: Tanimoto range to keep, LOW..HIGH (e.g. 0.4..0.7) or a minimum"),
) -> None:
    """Generate molecules; every one is checked by RDKit (invalid ones are counted, not written).

    Samples are streamed to disk in chunks, so -n 1000000 runs in bounded memory. Ctrl-C keeps
    the molecules drawn so far in OUTPUT's .partial file. --config FILE.toml holds the sampling
    settings (configs/sample.toml); flags typed here override it.
    """
    from molgen.generate import SampleRequest, sample_to_file
    from molgen.vae import MoleculeVAE

    set_torch_threads(threads)
    request = settings_from(ctx, SampleRequest, config, SAMPLE_FLAGS)
    vae = MoleculeVAE.load(model, device=device)
    with _warnings_to_console():
        report = sample_to_file(vae, request, output, grid=grid, on_note=note)
    if report.interrupted:
        error(report.interruption(), prefix="interrupted")
        raise typer.Exit(130)
    err.print(report.summary())


@app.command("fit-prior")
def fit_prior(
    out: Path = typer.Option(..., "--out", "-o", help="model file to write: the model with its fitted prior (.safetensors)"),
    model: ModelOpt = None,
    data: Optional[Path] = typer.Option(None, help="molecules whose codes the prior is fitted to (default: the model's training set if the checkpoint names one that is available, else the embedded 50k MOSES training molecules)"),
    smiles_column: SmilesColumnOpt = None,
    kind: str = typer.Option("gmm", help="gmm: a mixture of full Gaussians fitted by EM; posterior: the encoder's own Gaussians of --components molecules (for codes a few Gaussians cannot cover)"),
    components: int = typer.Option(16, help="Gaussians in the mixture (posterior: molecules stored; thousands)"),
    noise: float = typer.Option(1.0, help="posterior only: widen each stored Gaussian by this factor (above 1: more novel samples)"),
    limit: int = typer.Option(50000, help="fit to a random subset of this many molecules (0: all)"),
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    strict: StrictOpt = False,
    rejects: RejectsOpt = None,
) -> None:
    """Fit a Gaussian-mixture prior to the latent codes of real molecules; sampling then draws z from it.

    ``--kind posterior`` stores the encoder's Gaussians of ``--components`` training
    molecules instead (an aggregate-posterior prior): samples stay where the decoder
    was trained, at the price of a larger model file (2 x components x latent dim floats).
    """
    from molgen.generate.prior import fit_model_prior
    from molgen.vae import MoleculeVAE

    set_torch_threads(threads)
    vae = MoleculeVAE.load(model, device="cpu")
    smiles = _read(data, smiles_column, strict, rejects) if data is not None else None
    start = time.perf_counter()
    with _warnings_to_console():
        fit_model_prior(vae, smiles, components, limit, seed, show_progress=True, on_note=note, kind=kind, noise=noise).save(out)
    info = vae.latent_prior.info
    if kind == "posterior":
        err.print(f"stored the posteriors of {info['molecules']:,} molecules (noise x{noise:g}) in {time.perf_counter() - start:.0f} s; wrote {out}")
        return
    err.print(
        f"fitted {components} Gaussian(s) to {info['molecules']:,} codes in {time.perf_counter() - start:.0f} s "
        f"(mean log-likelihood {info['mean_log_likelihood']:.1f}{'' if info['converged'] else ', EM did not converge'}); wrote {out}"
    )


@app.command("tune-sampling")
def tune_sampling(
    output: Path = typer.Option(..., "--out", "-o", help="model file to write: the model with its chosen temperature (.safetensors)"),
    model: ModelOpt = None,
    validation: Optional[Path] = typer.Option(None, help="molecules to compare samples with (FCD); never the test set you will benchmark on (default: the embedded 50k MOSES training molecules)"),
    smiles_column: SmilesColumnOpt = None,
    train_file: Optional[Path] = typer.Option(None, "--train", help="training set for novelty (default: what the checkpoint remembers)"),
    temperatures: str = typer.Option("0.5,0.6,0.7,0.8,0.9,1.0", help="comma-separated candidates"),
    n: int = typer.Option(5000, "-n", help="samples per temperature"),
    min_novelty: float = typer.Option(0.9, help="keep only temperatures whose samples are at least this novel"),
    limit: int = typer.Option(20000, help="use a random subset of this many validation molecules (0: all)"),
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
) -> None:
    """Choose the model's default sampling temperature: lowest FCD to validation molecules at a novelty floor."""
    from molgen.generate.tuning import trials_table, tune_model_temperature
    from molgen.vae import MoleculeVAE, training_smiles

    set_torch_threads(threads)
    try:
        temps = [float(t) for t in temperatures.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"--temperatures must be comma-separated numbers, e.g. 0.6,0.8,1.0; got {temperatures!r}") from None
    vae = MoleculeVAE.load(model, device="cpu")
    reference = _read(validation, smiles_column, False, None, default_ok=True)
    reference = _random_subset(reference, limit, seed)
    train = _read(train_file, None, False, None) if train_file is not None else training_smiles(vae)
    if train is None:
        warn("the checkpoint's training set is not available; novelty is not checked (pass --train)", prefix="")
    best, trials = tune_model_temperature(vae, reference, validation_name=str(validation or "embedded MOSES train 50k"), temperatures=temps, train=train, n=n, min_novelty=min_novelty, seed=seed)
    out.print(trials_table(trials, best, f"FCD ({n:,} vs {len(reference):,})"))
    vae.save(output)
    err.print(f"chose temperature {best:g}; wrote {output}")


@app.command("fit-steering")
def fit_steering(
    out: Path = typer.Option(..., "--out", "-o", help="predictor file to write (.safetensors), used by sample --steer"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP + " (the predictor reads this model's tokens)"),
    data: Optional[Path] = typer.Option(None, help="training molecules (default: the embedded 50k MOSES training molecules)"),
    smiles_column: SmilesColumnOpt = None,
    properties: str = typer.Option("logp,qed,sa", help="properties to predict, from molgen.chem.PROPERTIES"),
    epochs: int = typer.Option(8),
    limit: int = typer.Option(0, help="use only the first N molecules (0: all)"),
    model_samples: int = typer.Option(0, help="also train on this many samples of the model (it writes chemistry the data lack)"),
    steered_samples: int = typer.Option(0, help="also train on this many samples steered by --init towards random requests (a DAgger round: the prefixes steering visits)"),
    steer_strength: float = typer.Option(4.0, help="steering strength of the --steered-samples"),
    steered_temperature: float = typer.Option(1.0, help="sampling temperature of the --steered-samples (the one you will sample with)"),
    init: Optional[Path] = typer.Option(None, help="continue training this predictor (its properties and normalisation)"),
    hidden: int = typer.Option(128, help="GRU width of a new predictor (steering cost grows with it)"),
    layers: int = typer.Option(1, help="GRU layers of a new predictor"),
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
) -> None:
    """Train a prefix property predictor (FUDGE) that steers sampling towards requested properties."""
    from molgen.generate.steering import load_prefix_predictor
    from molgen.generate.steering import steered_samples as steered
    from molgen.generate.steering_fit import fit_prefix_predictor
    from molgen.vae import MoleculeVAE

    set_torch_threads(threads)
    if epochs < 1 or model_samples < 0 or steered_samples < 0 or hidden < 1 or layers < 1:
        raise ConfigError("--epochs, --hidden and --layers must be >= 1, --model-samples and --steered-samples >= 0")
    if steered_samples and init is None:
        raise ConfigError("--steered-samples needs --init: the predictor that steers them")
    vae = MoleculeVAE.load(model, device="cpu")
    start_from = load_prefix_predictor(init) if init is not None else None
    smiles = _read(data, smiles_column, False, None, default_ok=True)
    if limit:
        smiles = smiles[:limit]
    start = time.perf_counter()
    if model_samples:
        smiles = [s for s in vae.sample(model_samples, seed=seed + 11) if s] + smiles
    if steered_samples:
        smiles = [s for s in steered(vae, start_from, steered_samples, steer_strength, seed=seed + 13, temperature=steered_temperature) if s] + smiles
    predictor = fit_prefix_predictor(vae, smiles, properties, epochs=epochs, seed=seed, init=start_from, hidden=hidden, layers=layers, show_progress=True)
    predictor.save(out)
    err.print(f"fitted a prefix predictor of {', '.join(predictor.config.names)} on {len(smiles):,} molecules in {time.perf_counter() - start:.0f} s: {out}")


