"""``molgen predictor train`` and ``molgen optimize``: argument parsing and wiring only."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import typer

from molgen.cli._app import app
from molgen.cli._common import REJECTS_HELP, STRICT_HELP, _read
from molgen.cli.options import (
    ConfigFile,
    DeviceOpt,
    ModelOpt,
    QuietOpt,
    RejectsOpt,
    SeedOpt,
    SmilesColumnOpt,
    StrictOpt,
    ThreadsOpt,
    described,
    settings_from,
)
from molgen.console import err, styled, warn
from molgen.errors import ConfigError
from molgen.utils.threads import set_torch_threads

__all__ = ["predictor_app", "optimize_command"]

predictor_app = typer.Typer(no_args_is_help=True, help="Latent property predictors (MLP ensembles on z) for optimization.", rich_markup_mode=None)



@predictor_app.command("train")
def predictor_train(
    out: Path = typer.Option(..., "--out", help="folder (gets predictor.safetensors and report.json) or a .safetensors file"),
    model: ModelOpt = None,
    properties: str = typer.Option("qed,logp,sa,plogp", help="built-in properties to predict (RDKit labels, free)"),
    data: Optional[Path] = typer.Option(None, help="molecules to label with RDKit (default: the embedded MOSES sample)"),
    labels: Optional[Path] = typer.Option(None, help="CSV of measured values instead of RDKit labels"),
    target: Optional[str] = typer.Option(None, help="column(s) of --labels to predict, comma-separated"),
    smiles_column: SmilesColumnOpt = None,
    limit: int = typer.Option(20000, help="use at most N molecules of --data (0: all)"),
    epochs: int = typer.Option(60),
    members: int = typer.Option(5, help="ensemble size"),
    hidden: int = typer.Option(256),
    warn_r2: float = typer.Option(0.5, help="warn when a target's held-out R^2 is below this"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    strict: described(StrictOpt, STRICT_HELP + "; applies to --data or --labels") = False,
    rejects: described(RejectsOpt, REJECTS_HELP + "; for --data or --labels") = None,
) -> None:
    """Train an MLP ensemble that predicts properties from latent vectors; reports held-out R^2 and Spearman."""
    from molgen.datasets.labels import read_labels
    from molgen.optimize.predictor import PredictorTrainingConfig
    from molgen.optimize.predictor_run import fit_and_save_predictor
    from molgen.vae import MoleculeVAE

    if (labels is not None) != bool(target):
        raise ConfigError("--labels needs --target COLUMN (the measured value to predict)" if labels is not None
                          else "--target only applies with --labels; use --properties for RDKit properties")  # fmt: skip
    set_torch_threads(threads)
    cfg = PredictorTrainingConfig(model={"members": members, "hidden": hidden}, epochs=epochs, warn_r2=warn_r2, seed=seed)
    vae = MoleculeVAE.load(model, device=device)
    table = read_labels(labels, target, smiles_column, strict, rejects) if labels is not None else None
    if table is not None and table.summary():
        warn(table.summary(), prefix="")
    smiles = None if table is not None else _read(data, None, strict, rejects, default_ok=True)
    names = [p.strip() for p in properties.split(",") if p.strip()]
    trained, path = fit_and_save_predictor(vae, out, cfg, (smiles[:limit] if limit else smiles) if smiles else None, names, table, True)
    styled(trained.report.summary(), "yellow" if trained.report.weak else "green")
    err.print(f"predictor written to {path}")


def _to_method(key: str):
    """A flag that sets ``key`` in the chosen method's table (``[gradient]``, ``[bo]``); unknown keys are errors there."""

    def write(data: dict, value) -> None:
        data.setdefault(data.get("method", "gradient"), {})[key] = value

    return write


def _method_options(data: dict, items: list[str]) -> None:
    """``--option key=value`` (a JSON value): a key of the method's table, else of the config itself (predictor_train_size)."""
    from molgen.optimize.request import OptimizeConfig

    method = data.get("method", "gradient")
    section = getattr(OptimizeConfig(), method, None)
    own = {f.name for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else set()
    top = {f.name for f in dataclasses.fields(OptimizeConfig)}
    for key, value in _parse_options(items).items():
        (data if key in top and key not in own else data.setdefault(method, {}))[key] = value


def _diversity_penalty(data: dict, value: float) -> None:
    if isinstance(data.get("diversity"), dict):  # the penalty applies only with the filter on
        data["diversity"]["penalty"] = value


#: optimize's flags -> their place in OptimizeConfig (molgen.optimize.request); "method" first, the method tables need it.
_OPTIMIZE_FLAGS = {
    "method": "method", "objective": "objective", "output": "output", "model": "model", "budget": "budget",
    "constraint": "constraints", "start": "start", "min_similarity": "min_similarity", "max_heavy_atoms": "max_heavy_atoms",
    "predictor": "predictor", "seed": "seed", "device": "device", "timeout": "timeout", "substructure": "substructure",
    "pareto": "pareto", "sanity_filter": "sanity_filter",
    "diversity_filter": lambda data, k: data.update(diversity={**data.get("diversity", {}), "bucket_size": k}) if k else None,
    "diversity_penalty": _diversity_penalty,
    **{name: _to_method(name) for name in ("n_starts", "steps", "lr", "decode_every", "prior_weight", "trust_radius", "rounds", "refit", "batch_size")},
    "option": _method_options,
}  # fmt: skip


def optimize_command(
    ctx: typer.Context,
    config: ConfigFile = None,
    objective: Optional[str] = typer.Option(None, "--objective", help="e.g. qed | 'qed:1,sa:-0.3' | logp=2.5 | 'sim(SMILES)' | module:function | file.py:function | pred:NAME | pmo:TASK | scoring.toml (many components, see configs/). A user function is f(smiles: str) -> float or f(smiles: list[str]) -> list[float] (example: docs/examples/objective.py)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="folder for molecules.csv, plots, oracle_log.jsonl, summary.json"),
    model: ModelOpt = None,
    method: str = typer.Option("gradient", help="optimizer: gradient | bo (Bayesian optimization; settings via --option, e.g. surrogate=latent, patience=20)"),
    budget: int = typer.Option(1000, help="oracle calls: new unique valid feasible molecules scored"),
    constraint: list[str] = typer.Option([], "--constraint", help="hard constraint such as mw<=450 (repeatable)"),
    start: list[str] = typer.Option([], "--start", help="start molecule SMILES (repeatable)"),
    starts_file: Optional[Path] = typer.Option(None, "--starts", help="file of start molecules"),
    min_similarity: Optional[float] = typer.Option(None, help="hard floor: keep only molecules at least this Tanimoto-similar to a lead (--start/--starts; the one they were reached from, else the nearest)"),
    max_heavy_atoms: Optional[int] = typer.Option(None, help="keep only molecules with at most this many heavy atoms"),
    predictor: Optional[Path] = typer.Option(None, help="predictor from 'molgen predictor train' (default: fit one on the fly)"),
    n_starts: Optional[int] = typer.Option(None, help="[gradient] starting points"),
    steps: Optional[int] = typer.Option(None, help="[gradient] Adam steps per start"),
    lr: Optional[float] = typer.Option(None, help="[gradient] Adam step size on z"),
    decode_every: Optional[int] = typer.Option(None, help="[gradient] decode and score every N steps"),
    prior_weight: Optional[float] = typer.Option(None, help="[gradient] weight of the ||z||^2/2 prior penalty"),
    trust_radius: Optional[float] = typer.Option(None, help="[gradient] max distance from the start point (0: none)"),
    rounds: Optional[int] = typer.Option(None, help="[gradient] restart rounds"),
    refit: bool = typer.Option(False, help="[gradient] refit the predictor on scored molecules between rounds"),
    batch_size: Optional[int] = typer.Option(None, help="points optimised (or proposed) together"),
    option: list[str] = typer.Option([], "--option", help="any method option as key=value (JSON values), repeatable"),
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    quiet: QuietOpt = False,
    timeout: Optional[float] = typer.Option(None, help="seconds a user objective may spend on one molecule; slower ones are logged failures"),
    substructure: list[str] = typer.Option([], "--substructure", help="SMARTS every molecule must contain (repeatable); others cost no oracle call"),
    diversity_filter: int = typer.Option(0, help="scaffold memory: after K hits on one Bemis-Murcko scaffold, more of it score zero and cost no oracle call (0: off)"),
    diversity_penalty: float = typer.Option(0.0, help="with --diversity-filter: factor on the score of a full scaffold's molecules (0: zero)"),
    pareto: bool = typer.Option(False, help="also write pareto.csv/pareto.png: the non-dominated molecules over a scoring file's 2-3 components"),
    strict: described(StrictOpt, STRICT_HELP + "; applies to --starts") = False,
    rejects: described(RejectsOpt, REJECTS_HELP + "; for --starts") = None,
    sanity_filter: bool = typer.Option(True, "--sanity-filter/--no-sanity-filter", help="drop molecules with rings over 8 atoms, aromatic rings over 7, radicals, or MCF/PAINS alerts before scoring (no oracle call; counted as filtered)"),
) -> None:
    """Search the latent space for molecules that maximise an objective, under constraints and an oracle budget.

    A user objective (module:function or file.py:function) scores one molecule,
    def f(smiles: str) -> float, or a batch, def f(smiles: list[str]) -> list[float];
    molgen reads the form from the annotation or the @molgen.optimize.per_molecule /
    @molgen.optimize.batch marker, else tries both. Example: docs/examples/objective.py.
    With --config FILE.toml (example: configs/optimize.toml) the file gives the settings and typed flags override it.
    """
    from molgen.optimize.request import OptimizeConfig, run_optimize

    settings = settings_from(ctx, OptimizeConfig, config, _OPTIMIZE_FLAGS)
    if settings.output is None:
        raise ConfigError("no output folder: pass -o FOLDER or set output in the config file")
    set_torch_threads(threads)
    if starts_file is not None:
        settings.start = [*settings.start, *_read(starts_file, None, strict, rejects)]
    _report(run_optimize(settings, show_progress=not quiet), settings.output)


def _parse_options(items: list[str]) -> dict:
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--option {item!r} must be key=value")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _report(result, output) -> None:
    """Print the run's summary (:func:`molgen.optimize.request.report_lines`)."""
    from molgen.optimize.request import report_lines

    for text, style in report_lines(result, output):
        styled(text, style) if style else err.print(text)


app.add_typer(predictor_app, name="predictor")
app.command("optimize")(optimize_command)
