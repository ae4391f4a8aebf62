"""The ``molgen`` command line: argument parsing and wiring only.

Every command is a thin call into the library. Domain errors
(:class:`~molgen.errors.MolgenError`) are printed as one line without a
traceback and exit with status 2.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from molgen.console import err, error, note, out, warn
from molgen.errors import ConfigError, DataError, MolgenError
from molgen.utils.threads import openmp_wait_policy_for, set_torch_threads

# Help text is printed as written: rich markup would eat "[gradient]" and SMILES such as c1cc[nH]c1.
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Molecular design with deep generative models.", rich_markup_mode=None)
data_app = typer.Typer(no_args_is_help=True, help="Data sets: materialise the MOSES sets into the local cache.", rich_markup_mode=None)
app.add_typer(data_app, name="data")
# Feature areas keep their own command modules; registering them here keeps one entry point.
from molgen.image.cli import image_app  # noqa: E402
from molgen.optimize.cli import optimize_command, predictor_app  # noqa: E402

app.add_typer(image_app, name="image")
app.add_typer(predictor_app, name="predictor")
app.command("optimize")(optimize_command)

MODEL_HELP = "checkpoint file, run folder or pretrained model name (default, zinc; see molgen info --list); default: default"
STRICT_HELP = "stop at the first invalid input line, naming it (default: skip and count bad lines)"
REJECTS_HELP = "write every skipped input line (line number, text, reason) to this CSV"
SHARD_HELP = "do only part i of N of the job (0-based, e.g. $SLURM_ARRAY_TASK_ID/N); combine the parts with molgen merge"


TEMPERATURE_HELP = "softmax temperature (<1: closer to the training data, >1: more diverse); default: the model's own (molgen tune-sampling), else 1"
INTDIV_HELP = (
    "IntDiv over every pair of molecules up to this many distinct ones; above it, estimated from 20,000 sampled "
    "molecules against all (linear, not quadratic, cost; the report gives the standard errors). 0: always every pair"
)
PRIOR_HELP = "latent prior: auto (the model's fitted prior if it has one, else N(0, I)), standard (N(0, I)) or fitted"


# The input standardisation policy of this invocation (molgen.chem.standardization), set by the global options.
_POLICY: dict[str, object] = {}


@app.callback()
def _standardisation_options(
    keep_salts: bool = typer.Option(False, "--keep-salts", help="keep every fragment (default: strip salts and solvents, keeping the largest organic fragment)"),
    neutralize: bool = typer.Option(False, "--neutralize", help="neutralise charges where a neutral form exists (default: keep charges)"),
    drop_stereo: bool = typer.Option(False, "--drop-stereo", help="remove stereochemistry from input molecules (default: keep it)"),
    drop_isotopes: bool = typer.Option(False, "--drop-isotopes", help="remove isotope labels from input molecules (default: keep them)"),
) -> None:
    """Molecular design with deep generative models.

    Every molecule read from a file goes through one standardisation policy (salts stripped; charges, stereo
    and isotopes kept) and each change is counted on stderr; the options before the command change it.
    """
    _POLICY.clear()
    _POLICY.update(
        strip_salts=not keep_salts, charges="neutralize" if neutralize else "keep",
        stereo="drop" if drop_stereo else "keep", isotopes="drop" if drop_isotopes else "keep",
    )  # fmt: skip


def _policy(**overrides: object):
    from molgen.chem.standardization import StandardizePolicy

    return StandardizePolicy(**{**_POLICY, **overrides})


def _read(
    path: Path | None, smiles_column: str | None, strict: bool, rejects: Path | None, default_ok: bool = False, stereo: str | None = None
):
    """Read molecules leniently (or strictly) under the standardisation policy; report skips and changes."""
    from molgen.datasets import default_training_smiles, read_molecules

    if path is None:
        if not default_ok:
            raise DataError("no input file given; pass --input FILE")
        smiles = default_training_smiles()
        note(f"using the embedded default data: {len(smiles):,} MOSES training molecules")
        return smiles
    policy = _policy(**({"stereo": stereo} if stereo else {}))
    result = read_molecules(path, smiles_column=smiles_column, strict=strict, rejects_to=rejects, standardize=policy)
    err.print(result.summary() + (f"; rejects in {rejects}" if rejects is not None and result.n_skipped else ""))
    if result.standardized is not None:
        note(f"{result.standardized.summary()} ({policy.describe()})")
    if not result.smiles:
        raise DataError(f"{path} contains no valid molecule; check the file and --smiles-column")
    return result.smiles


def _random_subset(smiles: list[str], limit: int, seed: int) -> list[str]:
    """A seeded random ``limit`` of the molecules, in file order (all of them when ``limit`` is 0 or larger)."""
    if not limit or len(smiles) <= limit:
        return smiles
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(len(smiles), limit, replace=False))
    return [smiles[i] for i in keep]


_PACKAGE_DIR = str(Path(__file__).resolve().parent)
_LIBRARY_NOISE = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def _show_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001 - warnings' signature
    """One yellow line for molgen's own warnings; other libraries' warnings (deprecations, numerics) are not
    the user's business on the command line (MOLGEN_SHOW_WARNINGS=1 shows them)."""
    import os

    ours = str(Path(filename).resolve()).startswith(_PACKAGE_DIR) and not issubclass(category, _LIBRARY_NOISE)
    if ours or os.environ.get("MOLGEN_SHOW_WARNINGS") == "1":
        warn(message)


def _quiet_rdkit() -> None:
    """RDKit's C++ log (parse errors, kekulization notes) would print over the output; molgen reports failures itself."""
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


@contextmanager
def _warnings_to_console(every: bool = True):
    """Show library warnings (e.g. a condition outside the training range) as one yellow line each.

    ``every``: repeat a warning each time it is raised (Python's default shows it once per place).
    """
    with warnings.catch_warnings():
        if every:
            warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        yield


def _write_molecules(path: Path, smiles: list[str], extra: dict[str, list] | None = None) -> None:
    import pandas as pd

    from molgen.utils.io import atomic_output

    frame = pd.DataFrame({"smiles": smiles, **(extra or {})})
    with atomic_output(path, "w") as fh:
        if path.suffix in (".smi", ".txt"):
            fh.write("".join(s + "\n" for s in smiles))
        else:
            frame.to_csv(fh, index=False)


@app.command()
def train(
    data: Optional[Path] = typer.Option(None, "--data", help="SMILES file (.smi/.csv/.tsv/.txt, optionally .gz); default: embedded MOSES sample"),
    out_dir: Path = typer.Option(..., "--out", help="run folder to create (or continue with --resume)"),
    representation: Optional[str] = typer.Option(None, help="smiles or selfies (default: selfies, or the --init-from checkpoint's)"),
    smiles_column: Optional[str] = typer.Option(None, help="CSV column holding SMILES (auto-detected by default)"),
    epochs: int = typer.Option(10, help="maximum number of epochs"),
    batch_size: int = typer.Option(256),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    lr_schedule: str = typer.Option("constant", help="constant, or cosine: anneal to 2% of --lr over the epochs or the time budget"),
    arch: Optional[str] = typer.Option(None, help="gru or transformer (self-attention encoder/decoder); default: gru, or the --init-from checkpoint's"),
    latent_dim: Optional[int] = typer.Option(None, help="latent dimensions (default 128); with --init-from every size left unset is the checkpoint's"),
    decoder_hidden: Optional[int] = typer.Option(None, help="GRU state size, or transformer feed-forward width (default 512)"),
    decoder_layers: Optional[int] = typer.Option(None, help="GRU layers (default 2) or transformer blocks (default 3)"),
    encoder_hidden: Optional[int] = typer.Option(None, help="GRU state size (default 256), or transformer feed-forward width (512)"),
    encoder_layers: Optional[int] = typer.Option(None, help="GRU layers (default 1) or transformer blocks (default 2)"),
    embed_dim: Optional[int] = typer.Option(None, help="token embedding (GRU, default 64) or model width (transformer, 128)"),
    n_heads: Optional[int] = typer.Option(None, help="attention heads (transformer only, default 4)"),
    condition_on: Optional[str] = typer.Option(None, "--condition-on", help="train a conditional model on these properties, e.g. logp,qed,sa"),
    condition_dropout: float = typer.Option(0.0, "--condition-dropout", help="probability of training a molecule without its condition, which enables sample --guidance (e.g. 0.15)"),
    latent_dropout: float = typer.Option(0.0, "--latent-dropout", help="fraction of molecules decoded from a prior draw instead of their code, so the decoder learns the properties from the conditions; at 0.5 the decoder ignored z (a conditional language model; docs/conditional_benchmarks.md)"),
    beta: float = typer.Option(0.5, help="final KL weight"),
    kl_schedule: str = typer.Option("linear", help="constant, linear or cyclical"),
    kl_warmup: int = typer.Option(2000, help="steps of the KL ramp (per cycle for cyclical)"),
    free_bits: float = typer.Option(0.0, help="KL floor per latent dimension, nats"),
    word_dropout: float = typer.Option(0.1, help="fraction of decoder inputs replaced by <unk>"),
    max_length: Optional[int] = typer.Option(None, help="longest molecule in tokens; longer ones are skipped and counted (default 100, or the --init-from checkpoint's)"),
    val_fraction: float = typer.Option(0.05),
    max_minutes: float = typer.Option(0.0, help="stop after this many minutes (0: no limit)"),
    max_cpu_minutes: float = typer.Option(0.0, help="stop after this many CPU-minutes of this process (0: no limit)"),
    patience: int = typer.Option(5, help="early-stopping patience in epochs (0 disables)"),
    checkpoint_every: int = typer.Option(500, help="steps between resumable checkpoints"),
    limit: int = typer.Option(0, help="use only the first N molecules (0: all)"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    resume: bool = typer.Option(False, help="continue the run in --out from its last checkpoint"),
    strict: bool = typer.Option(False, help=STRICT_HELP),
    rejects: Optional[Path] = typer.Option(None, help=REJECTS_HELP),
    init_from: Optional[str] = typer.Option(None, help="fine-tune: start from this checkpoint's weights, and its architecture and representation unless given; a file, run folder or pretrained name (default, zinc, drug-like; molgen info --list); its vocabulary grows by any new tokens of --data, nothing is dropped"),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
    precision: str = typer.Option("auto", help="auto (fp16 mixed precision on CUDA, bf16 autocast on CPUs with AVX512-BF16/AMX, else fp32), fp32, bf16 or fp16 (CUDA)"),
    compile_model: bool = typer.Option(False, "--compile", help="torch.compile the training forward pass (mostly for GPUs: fuses small kernels; the first steps pay the compilation)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Train a sequence VAE on your molecules (--data moses-train uses the cached MOSES training set)."""
    from molgen.conditioning import parse_property_names
    from molgen.init_from import inherit_architecture
    from molgen.vae_training import VAETrainingConfig, train_vae

    set_torch_threads(threads)
    train_set_name = None
    if data is not None and str(data) in ("moses-train",):
        from molgen.datasets import moses_split

        train_set_name, data = str(data), moses_split("train")
    smiles = _read(data, smiles_column, strict, rejects, default_ok=True)
    if limit:
        smiles = smiles[:limit]
    shape = inherit_architecture(
        None if resume else init_from, arch, representation, max_length, latent_dim=latent_dim, decoder_hidden=decoder_hidden,
        decoder_layers=decoder_layers, encoder_hidden=encoder_hidden, encoder_layers=encoder_layers, embed_dim=embed_dim, n_heads=n_heads,
    )  # fmt: skip
    if shape.inherited:
        note(f"architecture from {init_from}: {shape.describe()}")
    config = VAETrainingConfig(
        representation=shape.representation,
        model=shape.model,
        conditions=parse_property_names(condition_on) if condition_on is not None else [],
        condition_dropout=condition_dropout,
        latent_dropout=latent_dropout,
        train=dict(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            lr_schedule=lr_schedule,
            seed=seed,
            max_minutes=max_minutes,
            max_cpu_minutes=max_cpu_minutes,
            patience=patience,
            checkpoint_every=checkpoint_every,
            precision=precision,
            compile=compile_model,
        ),
        kl=dict(kind=kl_schedule, beta=beta, warmup_steps=kl_warmup, period=max(1, kl_warmup * 2)),
        free_bits=free_bits,
        word_dropout=word_dropout,
        val_fraction=val_fraction,
        max_length=shape.max_length,
    )
    source = {"data": str(data) if data else "embedded:moses_train_50k"}
    vae, result = train_vae(
        smiles,
        out_dir,
        config,
        device=device,
        resume=resume,
        show_progress=not quiet,
        data_summary=source,
        train_set_name=train_set_name,
        init_from=init_from,
    )
    err.print(
        f"trained {result.epochs_run} epoch(s), {result.steps} steps in {result.seconds / 60:.1f} min "
        f"(stopped: {result.stopped_because}); best validation loss {result.best_val_loss:.3f}; model: {out_dir / 'model.safetensors'}"
    )


@app.command()
def sample(
    n: int = typer.Option(1000, "-n", help="number of molecules to draw from the prior"),
    output: Path = typer.Option(Path("samples.csv"), "-o", "--output", help=".csv (with columns) or .smi"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    temperature: Optional[float] = typer.Option(None, help=TEMPERATURE_HELP),
    top_k: int = typer.Option(0, help="sample among the k most likely tokens (0: all)"),
    top_p: float = typer.Option(1.0, help="nucleus sampling: sample among the most likely tokens that make up this much probability (1: all)"),
    prior: str = typer.Option("auto", help=PRIOR_HELP),
    greedy: bool = typer.Option(False, help="argmax decoding instead of sampling"),
    unique: bool = typer.Option(False, help="keep only the first occurrence of each molecule"),
    seed: int = typer.Option(0),
    batch_size: int = typer.Option(1024),
    device: str = typer.Option("auto"),
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
    the molecules drawn so far in OUTPUT's .partial file.
    """
    from molgen.guidance import check_guidance
    from molgen.shards import file_digest, parse_shard, sidecar_path, write_sidecar
    from molgen.sample_table import PROPERTY_COLUMNS, grid_legend
    from molgen.sample_writer import novelty_set, write_samples
    from molgen.train.progress import progress_bar
    from molgen.vae import MoleculeVAE, resolve_model_path

    set_torch_threads(threads)
    if core_seeds is not None and not substructure:
        raise ConfigError("--core-seeds applies with --substructure SMARTS")
    if substructure or near or near_file is not None:
        from molgen.design_sampling import write_design_samples
        from molgen.optimize.cli import _read

        leads = list(near) + (_read(near_file, False, None) if near_file is not None else [])
        seeds = _read(core_seeds, False, None) if core_seeds is not None else None
        vae = MoleculeVAE.load(model, device=device)
        err.print(write_design_samples(vae, output, n, substructure, leads, radius, similarity, seeds, temperature, greedy, seed))
        return
    check_guidance(guidance)
    if n < 1:
        raise ConfigError(f"-n must be at least 1 molecule, not {n}")
    if steer is not None and condition is None:
        raise ConfigError('--steer needs a property request, e.g. --condition "logp=2.5"')
    if not (math.isfinite(steer_strength) and steer_strength >= 0):
        raise ConfigError(f"--steer-strength must be a finite number >= 0, not {steer_strength}")
    if steer_candidates < 1 or (steer_candidates > 1 and steer is None):
        raise ConfigError("--steer-candidates must be >= 1, and above 1 it needs --steer (the predictor chooses among the candidates)")
    spec = parse_shard(shard) if shard is not None else None
    total, seed_arg = n, seed
    if spec is not None:
        n, seed = spec.size(total), spec.seed(seed)
        sidecar_path(output).unlink(missing_ok=True)  # a part without its record is unfinished
    vae = MoleculeVAE.load(model, device=device)
    check_guidance(guidance, vae.model)
    if temperature is None:
        temperature = vae.default_temperature
    if vae.conditions is not None and condition is None:
        note(f"conditional model ({', '.join(vae.conditions.names)}) without --condition: conditions drawn from its training data")
    csv = output.suffix not in (".smi", ".txt")
    properties = properties and csv
    train = novelty_set(vae) if properties else None
    if properties and train is None:
        note("the model's training set is not available here: no novel column")
    start = time.perf_counter()
    with _warnings_to_console(), progress_bar(n, "sampling", unit="mol") as bar:
        chunks = vae.sample_chunks(
            n, temperature, top_k, greedy, seed, batch_size, condition=condition, precision=precision, guidance=guidance,
            steer=steer, steer_strength=steer_strength, top_p=top_p, prior=prior, steer_candidates=steer_candidates,
            properties=properties,
        )  # fmt: skip
        done = write_samples(chunks, output, unique=unique, properties=properties, train=train, progress=bar)
    seconds = time.perf_counter() - start
    if done.interrupted:
        if done.drawn:
            error(f"; kept the {done.written:,} molecules of the {done.drawn:,} samples drawn so far in {done.path} (written atomically); {output} was not written", prefix="interrupted")
        else:
            done.path.unlink(missing_ok=True)
            error(" before the first chunk of samples was finished; nothing was written", prefix="interrupted")
        raise typer.Exit(130)
    if spec is not None:
        job = dict(
            command="sample", n=total, seed=seed_arg, model=file_digest(resolve_model_path(model)), temperature=temperature,
            top_k=top_k, top_p=top_p, prior=prior, greedy=greedy, unique=unique, condition=condition, batch_size=batch_size, csv=csv,
            precision=precision, guidance=guidance, steer=file_digest(steer) if steer else None, steer_strength=steer_strength,
            steer_candidates=steer_candidates, properties=properties,
        )  # fmt: skip
        write_sidecar(output, spec, job, rows=done.written, header=csv, sampled=n, shard_seed=seed)
    err.print(
        (f"shard {spec} (seed {seed}): " if spec is not None else "")
        + f"{n:,} sampled in {seconds:.1f} s ({done.valid / max(seconds, 1e-9):,.0f} valid/s): "
        f"valid {done.valid / max(n, 1):.4f}, unique {done.distinct / max(1, done.valid):.4f}; wrote {done.written:,} molecules to {output}"
        + (f" with {', '.join(PROPERTY_COLUMNS)}" + (", novel" if train is not None else "") if properties else "")
    )
    if grid is not None and done.first:
        from molgen.viz import molecule_grid

        legends = [grid_legend(i, values) for i, (_, values) in enumerate(done.first)]
        molecule_grid([s for s, _ in done.first], grid, legends=legends, required=False)  # the molecules are written; a missing picture only warns


@app.command("fit-prior")
def fit_prior(
    out: Path = typer.Option(..., "--out", "-o", help="model file to write: the model with its fitted prior (.safetensors)"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    data: Optional[Path] = typer.Option(None, help="molecules whose codes the prior is fitted to (default: the model's training set if the checkpoint names one that is available, else the embedded 50k MOSES training molecules)"),
    smiles_column: Optional[str] = typer.Option(None),
    components: int = typer.Option(16, help="Gaussians in the mixture"),
    limit: int = typer.Option(50000, help="fit to a random subset of this many molecules (0: all)"),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
    strict: bool = typer.Option(False, help=STRICT_HELP),
    rejects: Optional[Path] = typer.Option(None, help=REJECTS_HELP),
) -> None:
    """Fit a Gaussian-mixture prior to the latent codes of real molecules; sampling then draws z from it."""
    from molgen.latent_prior import fit_latent_prior
    from molgen.vae import MoleculeVAE, training_smiles

    set_torch_threads(threads)
    if limit < 0:
        raise ConfigError("--limit must be >= 0 (0: all molecules)")
    vae = MoleculeVAE.load(model, device="cpu")
    smiles = _read(data, smiles_column, strict, rejects) if data is not None else None
    if smiles is None:
        smiles = training_smiles(vae)
        if smiles is not None:
            note(f"fitting to the model's training set ({len(smiles):,} molecules)")
        else:
            smiles = _read(None, None, False, None, default_ok=True)
    smiles = _random_subset(smiles, limit, seed)
    start = time.perf_counter()
    vae.latent_prior = fit_latent_prior(vae, smiles, components=components, seed=seed, show_progress=True)
    if vae.meta.pop("sampling", None) is not None:
        warn("the model's tuned temperature was chosen for its old prior and is dropped; run molgen tune-sampling again", prefix="")
    vae.save(out)
    info = vae.latent_prior.info
    err.print(
        f"fitted {components} Gaussian(s) to {info['molecules']:,} codes in {time.perf_counter() - start:.0f} s "
        f"(mean log-likelihood {info['mean_log_likelihood']:.1f}{'' if info['converged'] else ', EM did not converge'}); wrote {out}"
    )


@app.command("tune-sampling")
def tune_sampling(
    output: Path = typer.Option(..., "--out", "-o", help="model file to write: the model with its chosen temperature (.safetensors)"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    validation: Optional[Path] = typer.Option(None, help="molecules to compare samples with (FCD); never the test set you will benchmark on (default: the embedded 50k MOSES training molecules)"),
    smiles_column: Optional[str] = typer.Option(None),
    train_file: Optional[Path] = typer.Option(None, "--train", help="training set for novelty (default: what the checkpoint remembers)"),
    temperatures: str = typer.Option("0.5,0.6,0.7,0.8,0.9,1.0", help="comma-separated candidates"),
    n: int = typer.Option(5000, "-n", help="samples per temperature"),
    min_novelty: float = typer.Option(0.9, help="keep only temperatures whose samples are at least this novel"),
    limit: int = typer.Option(20000, help="use a random subset of this many validation molecules (0: all)"),
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
) -> None:
    """Choose the model's default sampling temperature: lowest FCD to validation molecules at a novelty floor."""
    from rich.table import Table

    from molgen.sampling_defaults import trials_record, tune_temperature
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
    best, trials = tune_temperature(vae, reference, temps, train=train, n=n, min_novelty=min_novelty, seed=seed)
    table = Table("temperature", "valid", "unique", "novelty", f"FCD ({n:,} vs {len(reference):,})")
    for r in trials:
        mark = " *" if r.temperature == best else ""
        table.add_row(f"{r.temperature:g}{mark}", f"{r.valid:.3f}", f"{r.unique:.3f}", "-" if r.novelty is None else f"{r.novelty:.3f}", f"{r.fcd:.3f}")
    out.print(table)
    vae.meta["sampling"] = dict(temperature=best, min_novelty=min_novelty, n=n, validation=str(validation or "embedded MOSES train 50k"), trials=trials_record(trials))
    vae.save(output)
    err.print(f"chose temperature {best:g}; wrote {output}")


@app.command("fit-steering")
def fit_steering(
    out: Path = typer.Option(..., "--out", "-o", help="predictor file to write (.safetensors), used by sample --steer"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP + " (the predictor reads this model's tokens)"),
    data: Optional[Path] = typer.Option(None, help="training molecules (default: the embedded 50k MOSES training molecules)"),
    smiles_column: Optional[str] = typer.Option(None),
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
    seed: int = typer.Option(0),
    threads: int = typer.Option(0, help="CPU threads for torch (0: torch's default)"),
) -> None:
    """Train a prefix property predictor (FUDGE) that steers sampling towards requested properties."""
    from molgen.steering import fit_prefix_predictor, load_prefix_predictor, steered_samples as steered
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


@app.command()
def encode(
    input: Path = typer.Option(..., "--input", "-i", help="SMILES file"),
    output: Path = typer.Option(Path("z.npy"), "-o", "--output", help=".npy of latent vectors (posterior means)"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    smiles_column: Optional[str] = typer.Option(None),
    sample_posterior: bool = typer.Option(False, "--sample", help="sample z ~ q(z|x) instead of the mean"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
    strict: bool = typer.Option(False, help=STRICT_HELP),
    rejects: Optional[Path] = typer.Option(None, help=REJECTS_HELP),
) -> None:
    """Encode molecules to latent vectors; writes Z.npy and Z.smi (the molecules, row by row)."""
    import numpy as np

    from molgen.utils.io import atomic_output
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    smiles = _read(input, smiles_column, strict, rejects)
    z, kept = vae.encode(smiles, sample=sample_posterior, seed=seed)
    with atomic_output(output, "wb") as fh:
        np.save(fh, z)
    _write_molecules(output.with_suffix(".smi"), [smiles[i] for i in kept])
    dropped = len(smiles) - len(kept)
    err.print(f"encoded {len(kept):,} molecules to {output} {z.shape}" + (f"; {dropped} not representable by this model's vocabulary/length were skipped" if dropped else ""))


@app.command()
def decode(
    latents: Path = typer.Option(..., "--latents", help=".npy array [n, latent_dim]"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write SMILES here (default: print)"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    temperature: float = typer.Option(1.0),
    sample_tokens: bool = typer.Option(False, "--sample", help="sample tokens instead of greedy decoding"),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
) -> None:
    """Decode latent vectors to molecules (greedy by default)."""
    import numpy as np

    from molgen.generate import DecodeOptions
    from molgen.utils.io import load_numpy
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    fix = "pass a .npy file written by molgen encode"
    z = load_numpy(latents, "an array of latent vectors", fix)
    if not isinstance(z, np.ndarray):
        z.close()
        raise DataError(f"{latents} is an .npz archive, not one array of latent vectors; {fix}")
    opts = DecodeOptions(strategy="sample" if sample_tokens else "greedy", temperature=temperature)
    smiles = vae.decode(z, opts, seed=seed)
    rows = [s or "" for s in smiles]
    if output:
        _write_molecules(output, rows, {"valid": [bool(s) for s in smiles]})
    else:
        for s in rows:
            print(s or "<invalid>")
    err.print(f"decoded {len(smiles):,} vectors: {sum(bool(s) for s in smiles):,} valid")


@app.command()
def reconstruct(
    input: Path = typer.Option(..., "--input", "-i"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    limit: int = typer.Option(0, help="use only the first N molecules (0: all)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="CSV of input, reconstruction, match"),
    smiles_column: Optional[str] = typer.Option(None),
    device: str = typer.Option("auto"),
    strict: bool = typer.Option(False, help=STRICT_HELP),
    rejects: Optional[Path] = typer.Option(None, help=REJECTS_HELP),
) -> None:
    """Reconstruction accuracy: encode to the mean, decode greedily, compare canonical SMILES."""
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(model, device=device)
    smiles = _read(input, smiles_column, strict, rejects)
    if limit:
        smiles = smiles[:limit]
    result = vae.reconstruct(smiles)
    if output:
        _write_molecules(output, result.inputs, {"reconstruction": [o or "" for o in result.outputs], "match": [a == b for a, b in zip(result.inputs, result.outputs)]})
    valid = sum(bool(o) for o in result.outputs) / max(1, len(result.outputs))
    out.print(f"reconstruction accuracy {result.accuracy:.4f} on {len(result.inputs):,} molecules (greedy, exact canonical match); valid decodes {valid:.4f}")


@app.command()
def interpolate(
    start: str = typer.Argument(..., help="SMILES of the first molecule"),
    end: str = typer.Argument(..., help="SMILES of the last molecule"),
    steps: int = typer.Option(10),
    method: str = typer.Option("slerp", help="slerp or linear"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="PNG grid of the path"),
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    device: str = typer.Option("auto"),
) -> None:
    """Decode the path between two molecules in latent space."""
    from molgen.vae import MoleculeVAE

    if method not in ("slerp", "linear"):
        raise ConfigError(f"unknown interpolation method {method!r}; use slerp or linear")
    vae = MoleculeVAE.load(model, device=device)
    path = vae.interpolate(start, end, steps, method)  # type: ignore[arg-type]
    for i, s in enumerate(path):
        print(f"{i:3d}  {s or '<invalid>'}")
    if output:
        from molgen.viz import molecule_grid

        molecule_grid(path, output, legends=[f"step {i}" for i in range(len(path))], per_row=min(5, len(path)))
        err.print(f"wrote {output}")


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
    from molgen.benchmark import run_benchmark
    from molgen.shards import file_digest, parse_shard
    from molgen.utils.io import RunLock
    from molgen.utils.runtime import resolve_device

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
            from molgen.vae import MoleculeVAE, resolve_model_path, training_smiles

            vae = MoleculeVAE.load(model, device=device)
            if temperature is None:
                temperature = vae.default_temperature
            start = time.perf_counter()
            n_here, seed_here = (spec.size(n), spec.seed(seed)) if spec is not None else (n, seed)
            samples = vae.sample(n_here, temperature=temperature, seed=seed_here, top_p=top_p, prior=prior)
            used_prior = "fitted" if vae.uses_fitted_prior(prior) else "N(0, I)"
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
    from molgen.shards import file_digest, read_sidecar, sidecar_path

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
    from molgen.benchmark import run_benchmark_shard

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

    from molgen.score import flag_threshold, score_molecules
    from molgen.shards import file_digest, parse_shard, sidecar_path, write_sidecar
    from molgen.train.progress import progress_bar
    from molgen.utils.io import atomic_output
    from molgen.vae import MoleculeVAE, resolve_model_path, training_smiles

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
    from molgen.shards import file_digest

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
    from molgen.shards import collect_parts, merge_text_parts

    set_torch_threads(threads)
    intdiv_limit = _intdiv_limit(intdiv_exact_max)
    found = collect_parts(parts, suffixes=(".npz",))
    kinds = {p.suffix == ".npz" for p in found}
    if len(kinds) > 1:
        raise DataError("these parts mix benchmark statistics (.npz) and text outputs; merge one job at a time")
    if kinds.pop():
        from molgen.benchmark import merge_benchmark
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


@app.command()
def info(
    model: Optional[Path] = typer.Option(None, help=MODEL_HELP),
    list_models: bool = typer.Option(False, "--list", help="list the pretrained models (names usable as --model and --init-from) instead"),
) -> None:
    """Show what a checkpoint holds: architecture, vocabulary, training data and history (--list: the pretrained models)."""
    from molgen.pretrained import describe_pretrained
    from molgen.train.checkpoint import read_checkpoint_meta
    from molgen.vae import resolve_model_path

    if list_models:
        out.print_json(json.dumps(describe_pretrained()))
        return
    path = resolve_model_path(model)
    meta = read_checkpoint_meta(path)
    vocab = meta.get("vocab", {})
    summary = {
        "path": str(path),
        "kind": meta.get("kind"),
        "model_config": meta.get("model_config"),
        "conditions": (meta.get("conditions") or {}).get("names"),
        "vocabulary_size": len(vocab.get("tokens", [])) if isinstance(vocab, dict) else None,
        "train_set": meta.get("train_set"),
        "n_train": meta.get("n_train"),
        "best_epoch": meta.get("best_epoch"),
        "last_epoch": (meta.get("history") or [{}])[-1],
        "latent_prior": meta.get("latent_prior"),
        "sampling_temperature": (meta.get("sampling") or {}).get("temperature"),
    }
    if model is None:
        summary["pretrained_models"] = {m["name"]: m["path"] for m in describe_pretrained()}
    out.print_json(json.dumps(summary))


@data_app.command("moses")
def data_moses(
    cache_dir: Optional[Path] = typer.Option(None, help="where to put the files (default ~/.cache/molgen/moses or $MOLGEN_CACHE)"),
    wheel: Optional[Path] = typer.Option(None, help="a local molsets wheel or unpacked folder (no download)"),
) -> None:
    """Materialise the MOSES train/test/test_scaffolds sets (from the molsets wheel on PyPI)."""
    from molgen.datasets import materialize_moses

    paths = materialize_moses(cache_dir=cache_dir, wheel=wheel)
    for name, path in paths.items():
        out.print(f"{name}: {path}")


def _os_error(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror or exc}{where}; check the path, its permissions and the free disk space"


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app; print domain errors as one line (exit status 2)."""
    openmp_wait_policy_for(sys.argv[1:] if argv is None else argv)
    _quiet_rdkit()
    try:
        with _warnings_to_console(every=False):
            app(args=argv, prog_name="molgen")
    except MolgenError as exc:
        error(exc)
        return 2
    except KeyboardInterrupt:
        error("; partial outputs were not written (use --resume to continue training)", prefix="interrupted")
        return 130
    except OSError as exc:
        # The file system said no (full disk, permissions, a vanished folder): one line, not a traceback.
        error(_os_error(exc))
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
