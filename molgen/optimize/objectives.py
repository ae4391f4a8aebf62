"""Objectives: what latent optimization maximises, parsed from a short text spec.

An :class:`Objective` is a weighted sum of terms, always maximised::

    qed                         one built-in property (any key of molgen.chem.PROPERTIES)
    qed:1,sa:-0.3               weighted sum (weight after the last colon)
    logp=2.5                    target: -|logP - 2.5|
    mw=250..450                 range: 0 inside, minus the distance outside
    sim(CC(=O)Nc1ccc(O)cc1)     Tanimoto similarity (Morgan r=2, 2048 bits) to a molecule
    mylib.scores:dock_score     a user function, f(str) -> float or f(list[str]) -> list[float],
    ./my_scores.py:score        imported by module path or loaded from a file (molgen.optimize.user_objective)
    pmo:qed                     a term from a registered prefix (see :func:`register_term_prefix`)

User code is only ever loaded from such an explicit ``module:function`` or
``file.py:function``. Terms built from properties alone also have a
differentiable *surrogate* form over predicted properties
(:meth:`Objective.surrogate`), which the gradient optimizer ascends through a
:class:`~molgen.models.predictor.LatentPredictor`.

Example::

    >>> obj = parse_objective("qed:1,sa:-0.3")
    >>> [t.label for t in obj.terms], obj.property_names
    (['qed', 'sa'], ['qed', 'sa'])
    >>> bool(obj.score(["CCO"]).values[0] < 0.5)
    True
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from molgen import chem
from molgen.errors import ConfigError
from molgen.optimize.user_objective import (  # ObjectiveTimeout: re-exported, where it used to live
    EXPECTED_SIGNATURES,
    ObjectiveSignatureError,
    ObjectiveTimeout,  # noqa: F401
    UserObjective,
    _deadline,
)

__all__ = [
    "Term",
    "Objective",
    "ObjectiveScores",
    "parse_objective",
    "load_user_function",
    "register_term_prefix",
    "TERM_PREFIXES",
]

TermKind = Literal["property", "target", "range", "similarity", "callable"]

#: Prefix -> factory(argument) -> (label, batch function list[str] -> list[float]).
#: Other modules add task families here (e.g. ``pmo``) without this module knowing them.
TERM_PREFIXES: dict[str, Callable[[str], tuple[str, Callable[[list[str]], Sequence[float]]]]] = {}

#: Prefixes whose module registers them when imported; imported on first use.
_PREFIX_MODULES = {"pmo": "molgen.optimize.pmo"}

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def register_term_prefix(prefix: str, factory: Callable[[str], tuple[str, Callable[[list[str]], Sequence[float]]]]) -> None:
    """Make ``prefix:ARG`` an objective term; ``factory(ARG)`` returns ``(label, batch_function)``."""
    TERM_PREFIXES[prefix] = factory


@dataclass
class Term:
    """One weighted term of an objective."""

    kind: TermKind
    label: str
    weight: float = 1.0
    prop: str | None = None  # property name for property/target/range terms
    low: float | None = None  # target (low == high) or range bounds
    high: float | None = None
    # Batch function for callable terms; a property term with a func (a predicted property) is scored by
    # the func but still has a differentiable surrogate through the predictor output named ``prop``.
    func: Callable[[list[str]], Sequence[float]] | None = field(default=None, repr=False)

    @property
    def differentiable(self) -> bool:
        return self.kind in ("property", "target", "range")

    def transform(self, x):
        """Raw property value -> term value (works on floats, numpy arrays and torch tensors)."""
        if self.kind == "property":
            return x
        if self.kind == "target":
            return -abs(x - self.low)
        # Distance outside [low, high]; written with max(0, .) pieces so tensors keep their gradient.
        below = self.low - x
        above = x - self.high
        return -(_relu(below) + _relu(above))


def _relu(x):
    if isinstance(x, (float, int)):
        return max(0.0, float(x))
    return x.clamp(min=0) if hasattr(x, "clamp") else np.maximum(x, 0.0)


@dataclass
class ObjectiveScores:
    """Scores of a batch: ``values`` (NaN where scoring failed) and, per molecule, the error text or None.

    ``components``: per molecule, named parts of its score (a scoring file's raw and transformed values).
    """

    values: np.ndarray
    errors: list[str | None]
    components: list[dict[str, float]] | None = None


class Objective:
    """A weighted sum of :class:`Term` objects, maximised; ``spec`` is the text it came from."""

    def __init__(self, terms: list[Term], spec: str | None = None) -> None:
        if not terms:
            raise ConfigError("an objective needs at least one term, e.g. --objective qed")
        self.terms = terms
        self.spec = spec or ",".join(f"{t.label}:{t.weight:g}" for t in terms)

    def __repr__(self) -> str:
        return f"Objective({self.spec!r})"

    @property
    def property_names(self) -> list[str]:
        """Built-in properties the differentiable terms use, in order, without repeats."""
        return list(dict.fromkeys(t.prop for t in self.terms if t.differentiable))

    @property
    def differentiable(self) -> bool:
        """True when every term is a function of built-in properties (a property predictor suffices)."""
        return all(t.differentiable for t in self.terms)

    def surrogate(self, predicted: dict):
        """The objective computed from predicted properties (tensors keep their gradient)."""
        if not self.differentiable:
            raise ConfigError(f"objective {self.spec!r} has terms that are not built-in properties; fit a predictor on its scores")
        total = 0.0
        for term in self.terms:
            total = total + term.weight * term.transform(predicted[term.prop])
        return total

    def score(self, smiles: Sequence[str], properties: dict[str, Sequence[float]] | None = None, timeout: float | None = None) -> ObjectiveScores:
        """Score valid SMILES. Failures (exceptions, NaN, wrong output length) give NaN and a message.

        ``properties`` may hold already computed built-in property columns to reuse. ``timeout``
        (seconds per molecule, for user functions) turns a molecule that takes longer into a failure.
        """
        smiles = list(smiles)
        total = np.zeros(len(smiles))
        errors: list[str | None] = [None] * len(smiles)
        for term in self.terms:
            values, term_errors = _term_values(term, smiles, properties, timeout)
            for i, (v, e) in enumerate(zip(values, term_errors)):
                if errors[i] is None and (e is not None or not math.isfinite(v)):
                    errors[i] = f"{term.label}: {e or 'returned ' + str(v)}"
            total = total + term.weight * np.where(np.isfinite(values), values, np.nan)
        total[[e is not None for e in errors]] = np.nan
        return ObjectiveScores(total, errors)

    def __call__(self, smiles: Sequence[str]) -> np.ndarray:
        return self.score(smiles).values


# -- evaluation ----------------------------------------------------------------


def _term_values(term: Term, smiles: list[str], properties, timeout: float | None = None) -> tuple[np.ndarray, list[str | None]]:
    if term.differentiable and term.func is None:
        if properties is not None and term.prop in properties:
            raw = np.asarray(properties[term.prop], dtype=float)
        else:
            raw = chem.compute_properties(smiles, [term.prop])[term.prop].to_numpy(dtype=float)
        errors = [None if math.isfinite(v) else "molecule did not parse" for v in raw]
        return np.asarray(term.transform(raw), dtype=float), errors
    return _call_batch(term.func, smiles, timeout)


def _call_batch(func: Callable[[list[str]], Sequence[float]], smiles: list[str], timeout: float | None = None) -> tuple[np.ndarray, list[str | None]]:
    """Call a batch function; if the batch call fails (or takes longer than ``timeout`` seconds per
    molecule), fall back to one call per molecule so one bad molecule costs only its own score."""
    if not smiles:
        return np.zeros(0), []
    try:
        with _deadline(timeout * len(smiles) if timeout else None):
            values = _as_floats(func(list(smiles)), len(smiles))
        return values, [None] * len(smiles)
    except ObjectiveSignatureError:
        raise  # neither form works: every molecule would fail the same way
    except Exception:  # user code may raise anything; retry molecule by molecule below
        pass
    values = np.full(len(smiles), np.nan)
    errors: list[str | None] = [None] * len(smiles)
    for i, s in enumerate(smiles):
        try:
            with _deadline(timeout):
                values[i] = _as_floats(func([s]), 1)[0]
        except Exception as exc:  # logged per molecule; the run goes on
            errors[i] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return values, errors


def _as_floats(result, n: int) -> np.ndarray:
    values = np.asarray(list(result), dtype=float).reshape(-1)
    if values.shape[0] != n:
        raise ValueError(f"returned {values.shape[0]} values for {n} molecules")
    return values


def _similarity_function(smiles: str) -> Callable[[list[str]], list[float]]:
    reference = chem.morgan_fingerprint(chem.parse_smiles(smiles))

    def similarity(batch: list[str]) -> list[float]:
        fps = [chem.morgan_fingerprint(s) for s in batch]
        return list(chem.bulk_tanimoto(reference, fps))

    return similarity


# -- parsing -------------------------------------------------------------------


def parse_objective(spec: str | Objective, prefixes: dict | None = None) -> Objective:
    """Parse an objective spec (see the module docstring); raises ConfigError with a one-line reason.

    ``prefixes`` adds term factories for this call only (same contract as :func:`register_term_prefix`;
    a factory may also return a whole :class:`Term`).
    """
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("empty objective; pass e.g. --objective qed or --objective 'qed:1,sa:-0.3'")
    known = {**TERM_PREFIXES, **(prefixes or {})}
    return Objective([_parse_term(part.strip(), known) for part in _split_top_level(spec.strip())], spec.strip())


def _split_top_level(spec: str) -> list[str]:
    """Split on commas outside parentheses (SMILES inside ``sim(...)`` have balanced parentheses)."""
    parts, depth, current = [], 0, []
    for ch in spec:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    if any(not p.strip() for p in parts):
        raise ConfigError(f"objective {spec!r} has an empty term; separate terms with single commas")
    return parts


def _parse_term(text: str, prefixes: dict) -> Term:
    body, weight = text, 1.0
    match = re.fullmatch(rf"(.*):\s*({_NUMBER})", text)
    if match:
        body, weight = match.group(1).strip(), float(match.group(2))
    if not math.isfinite(weight):
        raise ConfigError(f"objective term {text!r} has a non-finite weight")
    sim = re.fullmatch(r"sim\((.+)\)", body)
    if sim:
        smiles = chem.canonical_smiles(chem.parse_smiles(sim.group(1)))
        return Term("similarity", f"sim({smiles})", weight, func=_similarity_function(smiles))
    if ":" in body:
        prefix, arg = body.split(":", 1)
        if prefix in _PREFIX_MODULES and prefix not in prefixes:
            importlib.import_module(_PREFIX_MODULES[prefix])
            prefixes = {**TERM_PREFIXES, **prefixes}
        if prefix in prefixes:
            made = prefixes[prefix](arg)
            if isinstance(made, Term):
                made.weight = weight
                return made
            label, func = made
            return Term("callable", label, weight, func=func)
        return Term("callable", body, weight, func=load_user_function(body))
    if "=" in body:
        return _parse_target(body, weight)
    _check_property(body)
    return Term("property", body, weight, prop=body)


def _parse_target(body: str, weight: float) -> Term:
    prop, value = (x.strip() for x in body.split("=", 1))
    _check_property(prop)
    rng = re.fullmatch(rf"({_NUMBER})\s*\.\.\s*({_NUMBER})", value)
    if rng:
        low, high = float(rng.group(1)), float(rng.group(2))
        if low > high:
            raise ConfigError(f"range {body!r} is empty (low > high); write {prop}={high:g}..{low:g}")
        return Term("range", f"{prop}={low:g}..{high:g}", weight, prop=prop, low=low, high=high)
    if not re.fullmatch(_NUMBER, value):
        raise ConfigError(f"cannot read target {body!r}; write {prop}=2.5 or a range {prop}=2..3")
    target = float(value)
    return Term("target", f"{prop}={target:g}", weight, prop=prop, low=target, high=target)


def _check_property(name: str) -> None:
    if name not in chem.PROPERTIES:
        extra = f", {', '.join(p + ':TASK' for p in TERM_PREFIXES)}" if TERM_PREFIXES else ""
        raise ConfigError(
            f"unknown objective {name!r}; use a property ({', '.join(chem.PROPERTIES)}), sim(SMILES), "
            f"module:function or file.py:function{extra}"
        )


def load_user_function(path: str) -> Callable[[list[str]], Sequence[float]]:
    """Load ``package.module:function`` or ``path/to/file.py:function``; one-line ConfigError on failure.

    The function may score one molecule (``f(str) -> float``) or a batch (``f(list[str]) -> list[float]``);
    the result is a :class:`~molgen.optimize.user_objective.UserObjective`, always called with a batch.
    """
    module_name, _, func_name = path.rpartition(":")
    if not module_name or not func_name.isidentifier():
        raise ConfigError(f"{path!r} is not module:function or file.py:function")
    try:
        if module_name.endswith(".py"):
            file = Path(module_name)
            if not file.is_file():
                raise ConfigError(f"objective file {file} does not exist")
            mod_id = f"_molgen_user_{abs(hash(str(file.resolve())))}"
            spec = importlib.util.spec_from_file_location(mod_id, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[mod_id] = module  # so the module's own pickling/dataclasses work
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except Exception as exc:  # any failure inside user code surfaces as one line
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"cannot import {module_name!r} for objective {path!r}: {type(exc).__name__}: {first}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"{module_name!r} has no function {func_name!r} (objective {path!r}); expected {EXPECTED_SIGNATURES}")
    return UserObjective(func, path)
