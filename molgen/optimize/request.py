"""One optimization run as a typed config: what ``molgen optimize --config optimize.toml`` reads.

:class:`OptimizeConfig` holds every setting of :func:`~molgen.optimize.api.optimize`
in one checked dataclass; the method's own settings are nested tables that
reuse the method's config (``[gradient]`` is a
:class:`~molgen.optimize.gradient.GradientConfig`, ``[bo]`` a
:class:`~molgen.optimize.bo.BOConfig`), so a misspelt key is an error that names
its path. :func:`run_optimize` runs it; :func:`report_lines` is the summary the
command prints. The command is these three lines:

    >>> from molgen.optimize.request import OptimizeConfig, run_optimize, report_lines   # doctest: +SKIP
    >>> result = run_optimize(OptimizeConfig(objective="qed", budget=200, output="best"))  # doctest: +SKIP
    >>> print("\\n".join(text for text, _ in report_lines(result, "best")))                 # doctest: +SKIP

``OptimizeConfig.from_file("configs/optimize.toml")`` reads the example file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molgen.config import ConfigMixin
from molgen.errors import ConfigError
from molgen.optimize.bo import BOConfig
from molgen.optimize.diversity import DiversityConfig
from molgen.optimize.gradient import GradientConfig

__all__ = ["OptimizeConfig", "run_optimize", "report_lines", "method_options"]

#: The gradient method's option that is not a GradientConfig field: molecules its on-the-fly predictor is fitted on.
_PREDICTOR_TRAIN_SIZE = 10_000


@dataclass
class OptimizeConfig(ConfigMixin):
    """Every setting of one :func:`~molgen.optimize.api.optimize` run (see ``configs/optimize.toml``)."""

    _config_label = "optimize config"

    objective: str | None = None  # spec, module:function, file.py:function, pred:NAME, pmo:TASK or a scoring .toml
    output: str | None = None  # folder for molecules.csv, plots, oracle_log.jsonl, summary.json (None: no files)
    model: str | None = None  # checkpoint, run folder or pretrained name (None: the default model)
    method: str = "gradient"  # gradient | bo (or one added with register_method)
    budget: int = 1000  # oracle calls: new unique valid feasible molecules scored
    constraints: list[str] = field(default_factory=list)  # e.g. "mw<=450"
    start: list[str] = field(default_factory=list)  # lead molecules (SMILES)
    min_similarity: float | None = None  # hard Tanimoto floor to a lead
    max_heavy_atoms: int | None = None
    predictor: str | None = None  # from molgen predictor train (None: fit one on the fly when needed)
    predictor_train_size: int = _PREDICTOR_TRAIN_SIZE  # [gradient] molecules the on-the-fly predictor is fitted on
    substructure: list[str] = field(default_factory=list)  # SMARTS every molecule must contain
    sanity_filter: bool = True  # drop macrocycles and MCF/PAINS alerts before scoring
    pareto: bool = False  # also write the non-dominated set of a scoring file's 2-3 components
    timeout: float | None = None  # seconds a user objective may spend on one molecule
    seed: int = 0
    device: str = "auto"
    diversity: DiversityConfig | None = None  # scaffold memory (None: off)
    gradient: GradientConfig = field(default_factory=GradientConfig)
    bo: BOConfig = field(default_factory=BOConfig)

    def __post_init__(self) -> None:
        if self.budget is not None and self.budget < 1:
            raise ConfigError(f"budget must be at least 1 oracle call, not {self.budget}")


def method_options(config: OptimizeConfig) -> dict[str, Any]:
    """The options of ``config.method`` that differ from its defaults (what ``optimize(options=...)`` takes).

    Only the changed keys are passed, so ``summary.json`` records what the user chose.
    """
    section = getattr(config, config.method, None)
    if not dataclasses.is_dataclass(section):
        return {}
    defaults = type(section)()
    options = {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if getattr(section, f.name) != getattr(defaults, f.name)}
    if config.method == "gradient" and config.predictor_train_size != _PREDICTOR_TRAIN_SIZE:
        options["predictor_train_size"] = config.predictor_train_size
    return options


def run_optimize(config: OptimizeConfig, show_progress: bool = False, model: Any = None):
    """Run the optimization ``config`` describes -> :class:`~molgen.optimize.api.OptimizationResult`.

    ``model``: an already loaded model to use instead of ``config.model``.
    """
    from molgen.optimize.api import optimize

    if not config.objective:
        raise ConfigError("no objective: pass --objective SPEC or set objective in the config file")
    diversity = config.diversity.to_dict() if config.diversity is not None else None
    return optimize(
        config.objective, model if model is not None else config.model, method=config.method, budget=config.budget,
        constraints=config.constraints, start=config.start or None, min_similarity=config.min_similarity,
        max_heavy_atoms=config.max_heavy_atoms, predictor=config.predictor, options=method_options(config),
        out_dir=config.output, seed=config.seed, device=config.device, show_progress=show_progress, timeout=config.timeout,
        sanity_filter=config.sanity_filter, pareto=config.pareto, diversity=diversity, substructure=config.substructure,
    )  # fmt: skip


def report_lines(result, output: str | Path | None) -> list[tuple[str, str | None]]:
    """The run's summary as ``(text, style)`` lines: calls and counts with the top 3, the stop rule, advice, files."""
    oracle = result.oracle  # a weak predictor was reported when it was fitted (optimize() warns), not again here
    top = result.top(3)
    best = ", ".join(f"{r.objective:.4g} {r.smiles}" for r in top.itertuples()) or "nothing scored"
    lines: list[tuple[str, str | None]] = [(
        f"{oracle.calls:,} oracle calls in {result.summary['seconds']:.1f} s "
        f"(invalid {oracle.counts['invalid']:,}, repeats {oracle.counts['duplicate']:,}, infeasible {oracle.counts['infeasible']:,}, "
        f"filtered {oracle.counts.get('filtered', 0):,}, failed {oracle.counts['failed']:,}); top: {best}",
        None,
    )]  # fmt: skip
    stop = result.summary.get("stop") or {}
    if stop.get("rule"):
        lines.append((f"stopped: {stop['rule']}" + (f" ({stop['detail']})" if stop.get("detail") else ""), None))
    if result.summary.get("advice"):
        lines.append((result.summary["advice"], "yellow"))
    if output is not None:
        lines.append((f"results in {output}/ (molecules.csv, top_molecules.png, best_so_far.png, oracle_log.jsonl, summary.json)", None))
    return lines
