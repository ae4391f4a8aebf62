"""Scoring files: many objectives at once, each through a desirability transform, aggregated into one score.

``--objective scoring.toml`` (or :func:`load_scoring`) reads a TOML file such as::

    aggregate = "geometric"          # or "arithmetic": how the desirabilities are averaged
    pareto = ["qed", "dock"]         # optional: the 2-3 components --pareto compares (default: all)

    [[component]]
    name = "qed"                     # column prefix in molecules.csv (letters, digits, _)
    type = "property"                # property | pmo | function | alerts | similarity | predictor | docking
    property = "qed"
    weight = 1.0
    transform = { kind = "sigmoid", low = 0.4, high = 0.8 }

Component types and their keys (paths are relative to the TOML file):

========== ==========================================================================
property   ``property``: a built-in property (qed, logp, sa, plogp, mw, tpsa, ...)
pmo        ``task``: a PMO task (``pmo:<task>`` objectives)
function   ``function``: ``module:function`` or ``file.py:function`` (list[str] -> list[float])
alerts     ``smarts`` (list) and/or ``catalogs`` (pains, brenk, nih, zinc, chembl): raw = alerts matched
similarity ``references`` (SMILES) and/or ``references_file``: raw = max Tanimoto (Morgan r=2, 2048 bits)
predictor  ``path``, ``output``: a latent predictor (``molgen predictor train --labels``) on the molecule's encoding
docking    ``receptor``, ``center``, ``size``, ... (:class:`~molgen.optimize.docking.DockingConfig`): Vina score
========== ==========================================================================

Each molecule gets, per component, its raw value and its desirability (columns
``<name>_raw`` and ``<name>_desirability`` of ``molecules.csv``); the objective
is their weighted mean. A component that fails on a molecule (an exception, NaN,
a docking failure) fails the molecule, with the component named in the log.
Unknown keys, missing files and bad parameters are one-line errors naming the key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from molgen import chem
from molgen.config import from_table, read_toml
from molgen.errors import ConfigError, MolgenError
from molgen.optimize.desirability import Transform, aggregate
from molgen.optimize.objectives import (
    Objective,
    ObjectiveScores,
    Term,
    load_user_function,
    parse_objective,
)

__all__ = ["ScoringConfig", "ComponentConfig", "ScoringObjective", "load_scoring_config", "build_scoring", "load_scoring", "COMPONENT_TYPES"]

ComponentType = Literal["property", "pmo", "function", "alerts", "similarity", "predictor", "docking"]
COMPONENT_TYPES = ("property", "pmo", "function", "alerts", "similarity", "predictor", "docking")
_ALERT_CATALOGS = ("pains", "brenk", "nih", "zinc", "chembl")


@dataclass
class _Property:
    property: str


@dataclass
class _Pmo:
    task: str


@dataclass
class _Function:
    function: str


@dataclass
class _Alerts:
    smarts: list[str] = field(default_factory=list)
    catalogs: list[str] = field(default_factory=list)


@dataclass
class _Similarity:
    references: list[str] = field(default_factory=list)
    references_file: str | None = None


@dataclass
class _Predictor:
    path: str
    output: str


def _docking_config():
    from molgen.optimize.docking import DockingConfig

    return DockingConfig


_PARAMS: dict[str, Callable[[], type]] = {
    "property": lambda: _Property,
    "pmo": lambda: _Pmo,
    "function": lambda: _Function,
    "alerts": lambda: _Alerts,
    "similarity": lambda: _Similarity,
    "predictor": lambda: _Predictor,
    "docking": _docking_config,
}


@dataclass
class ComponentConfig:
    """One ``[[component]]``: name, type, weight, transform, and the type's own ``params``."""

    name: str
    type: ComponentType
    weight: float = 1.0
    transform: Transform = field(default_factory=Transform)
    params: Any = None


@dataclass
class ScoringConfig:
    """A whole scoring file; ``base`` is the folder relative paths are read from."""

    components: list[ComponentConfig]
    aggregate: Literal["arithmetic", "geometric"] = "geometric"
    pareto: list[str] = field(default_factory=list)
    base: Path = Path(".")
    source: str = "scoring"


@dataclass
class _Top:
    component: list[dict]
    aggregate: Literal["arithmetic", "geometric"] = "geometric"
    pareto: list[str] = field(default_factory=list)


def load_scoring_config(path: str | Path) -> ScoringConfig:
    """Read and check a scoring file (every key, every file it names); no model or receptor is loaded."""
    path = Path(path)
    where = path.name
    top = from_table(_Top, read_toml(path), where)
    if not top.component:
        raise ConfigError(f"{where}: add at least one [[component]]")
    components = [_component(table, f"{where}: component[{i}]") for i, table in enumerate(top.component)]
    names = [c.name for c in components]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{where}: component name {repeated[0]!r} is used twice; names must be unique")
    unknown = [p for p in top.pareto if p not in names]
    if unknown:
        raise ConfigError(f"{where}: pareto names {unknown[0]!r}, which is not a component ({', '.join(names)})")
    cfg = ScoringConfig(components, top.aggregate, list(top.pareto), path.parent, str(path))
    for i, c in enumerate(components):
        _check_files(c, cfg.base, f"{where}: component[{i}] ({c.name})")
    return cfg


def _component(table: Any, where: str) -> ComponentConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table")
    common = {k: table[k] for k in ("name", "type", "weight", "transform") if k in table}
    rest = {k: v for k, v in table.items() if k not in common}
    kind = common.get("type")
    if kind not in COMPONENT_TYPES:
        raise ConfigError(f"{where}.type must be one of {', '.join(COMPONENT_TYPES)}, not {kind!r}")
    base = from_table(ComponentConfig, common, where)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", base.name):
        raise ConfigError(f"{where}.name {base.name!r} must be letters, digits and _ (it becomes a CSV column)")
    if not (math.isfinite(base.weight) and base.weight >= 0):
        raise ConfigError(f"{where}.weight must be a number >= 0, not {base.weight!r}")
    base.params = from_table(_PARAMS[kind](), rest, f"{where} ({base.name}, type {kind})", ("name", "type", "weight", "transform"))
    return base


def _check_files(c: ComponentConfig, base: Path, where: str) -> None:
    p = c.params
    if c.type == "property" and p.property not in chem.PROPERTIES:
        raise ConfigError(f"{where}.property {p.property!r} is not a property; use one of {', '.join(chem.PROPERTIES)}")
    if c.type == "alerts":
        bad = [x for x in p.catalogs if x.lower() not in _ALERT_CATALOGS]
        if bad:
            raise ConfigError(f"{where}.catalogs has {bad[0]!r}; use {', '.join(_ALERT_CATALOGS)}")
        if not p.smarts and not p.catalogs:
            raise ConfigError(f"{where}: give smarts = [...] or catalogs = [...]")
    files = {"references_file": getattr(p, "references_file", None), "path": getattr(p, "path", None), "receptor": getattr(p, "receptor", None)}
    if c.type == "function" and ".py:" in p.function:
        files["function"] = p.function.rpartition(":")[0]
    for key, value in files.items():
        if value is not None and not (base / value).exists():
            raise ConfigError(f"{where}.{key}: file {base / value} does not exist")
    if c.type == "similarity" and not p.references and not p.references_file:
        raise ConfigError(f"{where}: give references = [SMILES, ...] or references_file")


# -- evaluation ------------------------------------------------------------------

Evaluator = Callable[[list[str], dict | None, float | None], tuple[np.ndarray, list[str | None]]]


class ScoringObjective(Objective):
    """The aggregate of a scoring file's components; :meth:`score` also returns every raw and transformed value."""

    def __init__(self, config: ScoringConfig, evaluators: list[Evaluator]) -> None:
        super().__init__([Term("callable", c.name, c.weight) for c in config.components], config.source)
        self.config = config
        self.evaluators = evaluators

    @property
    def component_names(self) -> list[str]:
        return [c.name for c in self.config.components]

    @property
    def pareto_names(self) -> list[str]:
        return self.config.pareto or self.component_names

    def set_output_dir(self, out: Path | None) -> None:
        """Tell components that write files (docking poses) where the run's outputs go."""
        for ev in self.evaluators:
            if hasattr(ev, "set_output_dir"):
                ev.set_output_dir(out)

    def close(self) -> None:
        """Stop worker processes (docking); called when a run ends."""
        for ev in self.evaluators:
            if hasattr(ev, "close"):
                ev.close()

    def facts(self) -> dict[str, Any]:
        """Per-component facts for summary.json (docking: molecules docked, seconds per molecule)."""
        out = {}
        for c, ev in zip(self.config.components, self.evaluators):
            if hasattr(ev, "docked"):
                out[c.name] = {"docked": ev.docked, "seconds": round(ev.seconds, 2), "seconds_per_molecule": round(ev.seconds / max(ev.docked, 1), 3)}
        return out

    def score(self, smiles: Sequence[str], properties: dict[str, Sequence[float]] | None = None, timeout: float | None = None) -> ObjectiveScores:
        smiles = list(smiles)
        n = len(smiles)
        errors: list[str | None] = [None] * n
        raw = np.full((n, len(self.evaluators)), np.nan)
        for j, (c, evaluate) in enumerate(zip(self.config.components, self.evaluators)):
            values, errs = evaluate(smiles, properties, timeout)
            raw[:, j] = values
            for i, (v, e) in enumerate(zip(values, errs)):
                if errors[i] is None and (e is not None or not math.isfinite(v)):
                    errors[i] = f"{c.name}: {e or 'returned ' + str(v)}"
        desir = np.column_stack([c.transform.apply(raw[:, j]) for j, c in enumerate(self.config.components)]) if n else raw
        total = aggregate(desir, [c.weight for c in self.config.components], self.config.aggregate) if n else np.zeros(0)
        total[[e is not None for e in errors]] = np.nan
        details = [
            {**{f"{c.name}_raw": float(raw[i, j]) for j, c in enumerate(self.config.components)},
             **{f"{c.name}_desirability": float(desir[i, j]) for j, c in enumerate(self.config.components)}}
            for i in range(n)
        ]  # fmt: skip
        return ObjectiveScores(total, errors, details)


def build_scoring(config: ScoringConfig | str | Path, vae=None) -> ScoringObjective:
    """The objective of a scoring file; ``vae`` is needed by predictor components (they read encodings)."""
    if not isinstance(config, ScoringConfig):
        config = load_scoring_config(config)
    evaluators = [_evaluator(c, config.base, vae) for c in config.components]
    return ScoringObjective(config, evaluators)


def load_scoring(path: str | Path, vae=None) -> ScoringObjective:
    """:func:`load_scoring_config` then :func:`build_scoring`."""
    return build_scoring(load_scoring_config(path), vae)


def _evaluator(c: ComponentConfig, base: Path, vae) -> Evaluator:
    p = c.params
    where = f"{c.name} ({c.type})"
    try:
        if c.type == "property":
            return _objective_evaluator(parse_objective(p.property))
        if c.type == "pmo":
            return _objective_evaluator(parse_objective(f"pmo:{p.task}"))
        if c.type == "function":
            spec = p.function
            if ".py:" in spec:
                file, _, name = spec.rpartition(":")
                spec = f"{base / file}:{name}"
            return _objective_evaluator(Objective([Term("callable", c.name, func=load_user_function(spec))]))
        if c.type == "alerts":
            return _batch(_alerts_function(p.smarts, p.catalogs))
        if c.type == "similarity":
            refs = list(p.references)
            if p.references_file:
                from molgen.datasets import read_molecules

                refs += read_molecules(base / p.references_file).smiles
            return _batch(_max_similarity_function(refs))
        if c.type == "predictor":
            return _batch(_predictor_function(vae, base / p.path, p.output))
        from molgen.optimize.docking import DockingOracle

        return DockingOracle(p, base)
    except MolgenError as exc:
        raise type(exc)(f"component {where}: {exc}") from None


def _objective_evaluator(objective: Objective) -> Evaluator:
    prefix = f"{objective.terms[0].label}: "  # the component's own name is prefixed by ScoringObjective

    def evaluate(smiles, properties, timeout):
        scored = objective.score(smiles, properties, timeout)
        errors = [e[len(prefix):] if e and e.startswith(prefix) else e for e in scored.errors]
        return np.asarray(scored.values, dtype=float), errors

    return evaluate


def _batch(func: Callable[[list[str]], Sequence[float]]) -> Evaluator:
    def evaluate(smiles, properties, timeout):
        values = np.asarray(func(smiles), dtype=float)
        return values, [None if math.isfinite(v) else "not scored" for v in values]

    return evaluate


def _alerts_function(smarts: list[str], catalogs: list[str]) -> Callable[[list[str]], list[float]]:
    from rdkit import Chem
    from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

    patterns = []
    for s in smarts:
        q = Chem.MolFromSmarts(s)
        if q is None:
            raise ConfigError(f"smarts {s!r} is not valid SMARTS")
        patterns.append(q)
    catalog = None
    if catalogs:
        params = FilterCatalogParams()
        for name in catalogs:
            params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, name.upper()))
        catalog = FilterCatalog(params)

    def count(batch: list[str]) -> list[float]:
        out = []
        for s in batch:
            mol = chem.parse_smiles(s)
            n = sum(mol.HasSubstructMatch(q) for q in patterns)
            if catalog is not None:
                n += len(catalog.GetMatches(mol))
            out.append(float(n))
        return out

    return count


def _max_similarity_function(references: list[str]) -> Callable[[list[str]], list[float]]:
    if not references:
        raise ConfigError("no reference molecule to compare with")
    fps = [chem.morgan_fingerprint(chem.parse_smiles(s)) for s in references]

    def similarity(batch: list[str]) -> list[float]:
        return [float(max(chem.bulk_tanimoto(chem.morgan_fingerprint(s), fps))) for s in batch]

    return similarity


def _predictor_function(vae, path: Path, output: str) -> Callable[[list[str]], list[float]]:
    if vae is None:
        raise ConfigError("a predictor component needs the model: pass vae= to build_scoring (optimize does)")
    from molgen.optimize.predicted import predicted_values
    from molgen.optimize.predictor import load_predictor

    trained = load_predictor(path, device=vae.device, latent_dim=vae.config.latent_dim)
    if output not in trained.model.names:
        raise ConfigError(f"output {output!r} is not predicted by {path}; it predicts {', '.join(trained.model.names)}")
    return lambda batch: predicted_values(vae, trained, output, batch)
