"""One call for latent optimization, with the same power as ``molgen optimize``.

    >>> from molgen.optimize import optimize
    >>> result = optimize("qed:1,sa:-0.3", constraints=["mw<=450"], budget=2000, out_dir="best")  # doctest: +SKIP
    >>> result.frame.head(3)                                                                     # doctest: +SKIP

:func:`optimize` resolves the model, objective, constraints, start molecules
and predictor, runs a registered method (``gradient`` here; other modules add
theirs with :func:`register_method`) against an
:class:`~molgen.optimize.oracle.Oracle`, and writes the outputs described in
:mod:`molgen.optimize.outputs`. An interrupted run (Ctrl-C) still writes the
CSV, plots and summary of everything scored so far before re-raising.
"""

from __future__ import annotations

import importlib
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molgen import chem
from molgen.errors import ConfigError
from molgen.generate.substructure import CoreFilter, find_core_seeds
from molgen.optimize.constraints import Constraint, ConstraintSet
from molgen.optimize.gradient import (
    GradientConfig,
    optimize_gradient,
    penalised_constraints,
)
from molgen.optimize.objectives import Objective, parse_objective
from molgen.optimize.oracle import Oracle
from molgen.optimize.predicted import predicted_prefix
from molgen.optimize.outputs import OUTPUT_FILES, results_frame, write_outputs
from molgen.optimize.predictor import (
    PredictorTrainingConfig,
    TrainedPredictor,
    load_predictor,
    train_property_predictor,
)
from molgen.optimize.sanity import SanityFilter
from molgen.utils.runtime import environment_info, seed_everything

__all__ = ["optimize", "OptimizationResult", "MethodContext", "register_method", "METHODS", "build_constraints"]


@dataclass
class MethodContext:
    """Everything a method needs; it scores only through ``oracle`` and returns a JSON-able dict of facts."""

    vae: Any
    oracle: Oracle
    starts: list[str]
    seed: int
    options: dict[str, Any]
    predictor: TrainedPredictor | None = None
    show_progress: bool = False
    info: dict[str, Any] = field(default_factory=dict)


#: Training molecules with the core that seed a --substructure search when no --start is given.
_CORE_SEEDS = 500

#: Method name -> runner(context) -> dict of facts for summary.json.
METHODS: dict[str, Callable[[MethodContext], dict[str, Any]]] = {}

#: Methods whose module registers them when imported; imported on first use.
_METHOD_MODULES = {"bo": "molgen.optimize.bo"}


def register_method(name: str, runner: Callable[[MethodContext], dict[str, Any]]) -> None:
    """Make ``optimize(method=name)`` / ``molgen optimize --method name`` call ``runner``."""
    METHODS[name] = runner


@dataclass
class OptimizationResult:
    """Outcome of :func:`optimize`: the oracle (every score), the ranked frame, facts and output paths."""

    oracle: Oracle
    frame: pd.DataFrame
    summary: dict[str, Any]
    paths: dict[str, Path]

    def top(self, k: int = 10) -> pd.DataFrame:
        return self.frame.head(k)

    @property
    def best_so_far(self) -> np.ndarray:
        return self.oracle.best_so_far()


def build_constraints(
    constraints: Sequence[str | Constraint] = (), min_similarity: float | None = None, max_heavy_atoms: int | None = None
) -> ConstraintSet:
    """Constraint strings plus the two common shortcuts, as one checked set."""
    items = list(constraints)
    if min_similarity is not None:
        if not 0 <= min_similarity <= 1:
            raise ConfigError(f"--min-similarity must be in [0, 1], got {min_similarity:g}")
        items.append(Constraint("sim", ">=", float(min_similarity)))
    if max_heavy_atoms is not None:
        items.append(Constraint("heavy_atoms", "<=", float(max_heavy_atoms)))
    return ConstraintSet.parse(items)


def optimize(
    objective: str | Objective,
    model=None,
    method: str = "gradient",
    budget: int | None = 1000,
    constraints: Sequence[str | Constraint] = (),
    start: str | Sequence[str] | None = None,
    min_similarity: float | None = None,
    max_heavy_atoms: int | None = None,
    predictor: TrainedPredictor | str | Path | None = None,
    options: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
    show_progress: bool = False,
    timeout: float | None = None,
    sanity_filter: SanityFilter | bool = True,
    pareto: bool = False,
    diversity: Any = None,
    substructure: Sequence[str] = (),
) -> OptimizationResult:
    """Optimise ``objective`` in the latent space of ``model`` (a MoleculeVAE or any object with its
    ``encode``/``decode``/``config.latent_dim``, a checkpoint path, or None for the shipped default).

    ``options`` are the method's settings (for ``gradient``: the fields of
    :class:`~molgen.optimize.gradient.GradientConfig`, plus ``predictor_train_size``
    -- molecules used to fit a property predictor when none is given).
    ``timeout`` limits the seconds a user objective may spend on one molecule (a slower one is a logged failure).
    ``sanity_filter`` (on by default; a :class:`~molgen.optimize.sanity.SanityFilter` or False) drops
    macrocycles and MCF/PAINS alerts before scoring, at no oracle cost.
    ``objective`` may be a scoring file (``*.toml``, :mod:`molgen.optimize.scoring`); with ``pareto`` its
    components' non-dominated set is written too (:mod:`molgen.optimize.pareto`).
    ``diversity``: a scaffold memory (:mod:`molgen.optimize.diversity`) as a DiversityConfig, a dict of
    its fields, or an int (the bucket size): after that many hits on one scaffold, more of it score zero.
    ``substructure``: SMARTS every scored molecule must contain (others are infeasible: no oracle call); without
    ``start`` molecules, the search starts from training molecules that contain them (:mod:`molgen.generate.substructure`).
    Returns the oracle and the ranked molecules; with ``out_dir`` also writes the output files.
    """
    from molgen.vae import MoleculeVAE

    starts, scoring, objective = _check_request(objective, method, start, pareto)
    cset = build_constraints(constraints, min_similarity, max_heavy_atoms)
    memory = _scaffold_memory(diversity)
    core = CoreFilter(list(substructure)) if substructure else None
    # Anything with encode/decode/config.latent_dim works (a MoleculeVAE, or a user's own model).
    vae = model if hasattr(model, "decode") and hasattr(model, "encode") else MoleculeVAE.load(model, device=device)
    trained = _resolve_predictor(predictor, vae)
    if scoring is not None:
        from molgen.optimize.scoring import build_scoring

        objective = build_scoring(scoring, vae)
    objective = parse_objective(objective, prefixes=predicted_prefix(vae, trained))
    seed_everything(seed)
    out = Path(out_dir) if out_dir is not None else None
    sanity = SanityFilter() if sanity_filter is True else (sanity_filter or None)
    if hasattr(objective, "set_output_dir"):
        objective.set_output_dir(out)
    oracle = Oracle(objective, budget, cset, starts, out / OUTPUT_FILES["log"] if out else None, timeout=timeout, sanity=sanity, diversity=memory, require=core)
    # Without leads, a core's search starts at training molecules that have it (the oracle keeps no leads then).
    seeds = oracle.starts or (_core_seeds(vae, core) if core else [])
    ctx = MethodContext(vae, oracle, seeds, seed, dict(options or {}), trained, show_progress)
    summary: dict[str, Any] = {"method": method, "seed": seed, "options": ctx.options, "model": vae.meta.get("path")}
    summary["sanity_filter"] = sanity.to_dict() if sanity is not None else None
    if sanity is not None and any(oracle.lead_alerts):
        # Alerts the leads carry, allowed in the molecules found from them: said, so nobody is surprised by one.
        summary["sanity_filter"]["lead_alerts"] = {s: sanity.alert_names(a) for s, a in zip(oracle.starts, oracle.lead_alerts) if a}
    if core is not None:
        summary["substructure"] = {"smarts": core.smarts, "seed_molecules": 0 if oracle.starts else len(seeds)}
    if pareto:
        summary["pareto"] = [f"{name}_desirability" for name in objective.pareto_names]
    return _run_method(method, ctx, out, summary, min_similarity)


def _check_request(objective, method: str, start, pareto: bool):
    """Everything that can be checked before a model loads: -> (start molecules, scoring config or None, objective)."""
    if method not in METHODS and method in _METHOD_MODULES:
        importlib.import_module(_METHOD_MODULES[method])
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; available: {', '.join(sorted(METHODS))}")
    starts = [start] if isinstance(start, str) else list(start or [])
    for s in starts:
        chem.parse_smiles(s)  # a bad start fails here with InvalidSmilesError, before any model loads
    scoring = _scoring_config(objective)  # a scoring file is checked whole before any model loads
    if scoring is None and pareto:
        raise ConfigError("--pareto needs a scoring file (--objective scoring.toml) with 2-3 components to compare")
    if pareto and not 2 <= len(scoring.pareto or scoring.components) <= 3:
        raise ConfigError(f"--pareto compares 2 or 3 components; name them with pareto = [...] in {scoring.source}")
    if isinstance(objective, str) and "pred:" not in objective and scoring is None:
        objective = parse_objective(objective)  # fail on a bad spec before loading any model
    return starts, scoring, objective


def _run_method(method: str, ctx: MethodContext, out: Path | None, summary: dict[str, Any], min_similarity) -> OptimizationResult:
    """Run ``method``; the outputs are written even when Ctrl-C stops it (then re-raised)."""
    oracle = ctx.oracle
    t0 = time.perf_counter()
    try:
        summary["method_facts"] = METHODS[method](ctx)
        summary["interrupted"] = False
    except KeyboardInterrupt:
        summary["interrupted"] = True
        _finish(oracle, out, summary, t0, ctx)
        raise
    _add_advice(summary, oracle, method, min_similarity)
    paths = _finish(oracle, out, summary, t0, ctx)
    return OptimizationResult(oracle, results_frame(oracle), summary, paths)


def _add_advice(summary: dict[str, Any], oracle: Oracle, method: str, min_similarity: float | None) -> None:
    """``summary["stop"]`` (the rule that ended the run) and ``summary["advice"]`` (one line, or None)."""
    from molgen.optimize.advice import run_advice

    facts = summary.get("method_facts") or {}
    stop = (facts.get("stop") or {}).get("rule") or facts.get("stopped") or ""
    seen = oracle.calls + sum(oracle.counts[k] for k in ("duplicate", "invalid", "infeasible"))
    summary["stop"] = facts.get("stop") or {"rule": stop, "detail": ""}
    summary["advice"] = run_advice(oracle.budget, oracle.calls, oracle.counts["duplicate"], seen, stop, method, bool(oracle.starts), min_similarity,
                                   filtered=oracle.counts["filtered"])  # fmt: skip


def _finish(oracle: Oracle, out: Path | None, summary: dict[str, Any], t0: float, ctx: MethodContext) -> dict[str, Path]:
    summary.update(seconds=round(time.perf_counter() - t0, 2), environment=environment_info(ctx.vae.device), **ctx.info)
    if oracle.diversity is not None:
        summary["diversity_filter"] = oracle.diversity.summary()
    oracle.close()
    if hasattr(oracle.objective, "close"):  # a scoring file's docking workers
        summary["scoring"] = oracle.objective.facts()
        oracle.objective.close()
    if out is None:
        return {}
    paths = write_outputs(oracle, out, summary)
    if summary.get("pareto"):
        from molgen.optimize.pareto import write_pareto

        paths.update(write_pareto(results_frame(oracle), summary["pareto"], out))
    return paths


def _core_seeds(vae, core: CoreFilter) -> list[str]:
    """Training molecules with the core that the model can write (the others cannot be encoded)."""
    seeds = find_core_seeds(core, limit=_CORE_SEEDS)
    return [seeds[i] for i in vae.tokenize(seeds)[2]] if seeds and hasattr(vae, "tokenize") else seeds


def _scaffold_memory(diversity):
    from molgen.optimize.diversity import DiversityConfig, ScaffoldMemory

    if diversity is None or diversity is False or isinstance(diversity, ScaffoldMemory):
        return diversity or None
    if isinstance(diversity, bool) or not isinstance(diversity, (int, dict, DiversityConfig)):
        raise ConfigError(f"diversity must be a bucket size, a dict or a DiversityConfig, not {diversity!r}")
    if isinstance(diversity, int):
        diversity = DiversityConfig(bucket_size=diversity)
    elif isinstance(diversity, dict):
        diversity = DiversityConfig.from_dict(diversity)
    return ScaffoldMemory(diversity)


def _scoring_config(objective):
    """The checked scoring file when ``objective`` names one (``*.toml``) or is a ScoringConfig, else None."""
    from molgen.optimize.scoring import ScoringConfig, load_scoring_config

    if isinstance(objective, ScoringConfig):
        return objective
    if isinstance(objective, (str, Path)) and str(objective).strip().lower().endswith(".toml"):
        return load_scoring_config(str(objective).strip())
    return None


def _resolve_predictor(predictor, vae) -> TrainedPredictor | None:
    if predictor is None or isinstance(predictor, TrainedPredictor):
        return predictor
    return load_predictor(predictor, device=vae.device, latent_dim=vae.config.latent_dim)


# -- the gradient method -------------------------------------------------------


def _run_gradient(ctx: MethodContext) -> dict[str, Any]:
    opts = dict(ctx.options)
    train_size = int(opts.pop("predictor_train_size", 10_000))
    cfg = GradientConfig.from_dict(opts)
    objective = ctx.oracle.objective
    trained, data = ctx.predictor, None
    if objective.differentiable and trained is None:
        # Constrained properties are predicted too, so the ascent can keep within the constraints (constraint_weight).
        extra = [c.prop for c in penalised_constraints(ctx.oracle, cfg.constraint_weight)]
        properties = list(dict.fromkeys(objective.property_names + extra))
        trained, data = _auto_predictor(ctx.vae, properties, train_size, cfg, ctx.seed, ctx.show_progress)
    if trained is not None:
        if trained.report.weak:
            warnings.warn(trained.report.summary(), stacklevel=2)
        ctx.info["predictor"] = {"names": trained.model.names, "report": trained.report.summary(), "weak": trained.report.weak}
    # Leads (--start) are searched around; a core's seed molecules only replace the prior as starting points.
    leads = ctx.starts if ctx.oracle.starts else None
    design = None if leads else (ctx.starts or None)
    run = optimize_gradient(ctx.vae, ctx.oracle, trained, cfg, leads, data, ctx.seed, ctx.show_progress, design_smiles=design)
    return {"config": cfg.to_dict(), "decoded": run.decoded, "rounds": run.rounds, "refits": run.reports, "round_log": run.round_log,
            "stop": {"rule": run.stop, "detail": run.stop_detail}, **({"mutants": dict(run.mutants)} if run.mutants["proposed"] else {})}


def _auto_predictor(vae, properties: list[str], n: int, cfg: GradientConfig, seed: int, show_progress: bool = False):
    """Fit a property predictor on ``n`` embedded training molecules (RDKit labels: no oracle calls)."""
    from molgen.datasets import default_training_smiles

    smiles = default_training_smiles(limit=n)
    config = PredictorTrainingConfig.from_dict({**cfg.predictor, "seed": seed})
    trained = train_property_predictor(vae, smiles, properties, config, show_progress=show_progress)
    data = None
    if cfg.refit:
        z, kept = vae.encode(smiles)
        y = chem.compute_properties([smiles[i] for i in kept], properties)[properties].to_numpy()
        data = (z, y)
    return trained, data


register_method("gradient", _run_gradient)
