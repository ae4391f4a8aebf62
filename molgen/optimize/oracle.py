"""The oracle: scores molecules with the true objective, counts calls against a budget, logs every call.

Every optimizer in :mod:`molgen.optimize` sees the objective only through an
:class:`Oracle`, so the accounting is the same for all of them:

* an input that is ``None`` or not valid SMILES is counted as *invalid* and
  costs nothing;
* a molecule already seen (same canonical SMILES) returns its cached score and
  costs nothing;
* a new molecule that breaks a hard constraint is *infeasible*: logged, never
  passed to the objective, costs nothing;
* a new molecule the sanity filter rejects (:mod:`molgen.optimize.sanity`:
  huge or aromatic macrocycles, MCF/PAINS alerts its lead does not carry) is *filtered*: logged with
  its reason, never passed to the objective, costs nothing;
* every other new molecule is one oracle call: scored once, charged once
  against ``budget``, written at once as one line of the JSONL log (so an
  interrupted run keeps a complete log). Objective failures (an exception,
  NaN or a timeout for that molecule) are logged with their message and still count,
  because the objective was called.

When the budget is spent, further new molecules get NaN and are not logged;
:attr:`Oracle.exhausted` tells the optimizer to stop.

Per new molecule the oracle computes only the built-in properties it needs
(:attr:`Oracle.property_names`: the objective's, the constraints', and any an
optimizer asks for with :meth:`Oracle.track_properties`); the other columns of
a record are filled by :meth:`Oracle.complete_properties`, once, for the
molecules that are reported. A caller that already has canonical SMILES or
property values (computed in worker processes, overlapped with decoding)
passes them in, and the oracle skips that work.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molgen import chem
from molgen.errors import ConfigError
from molgen.optimize.constraints import ConstraintSet
from molgen.optimize.objectives import Objective, parse_objective
from molgen.optimize.sanity import SanityFilter

__all__ = ["Oracle", "OracleRecord"]


@dataclass
class OracleRecord:
    """One scored (or infeasible) molecule."""

    smiles: str
    score: float  # NaN when the objective failed or the molecule is infeasible
    status: str  # ok | failed | infeasible | filtered
    call: int | None  # 1-based oracle call index; None when not charged (infeasible, filtered)
    step: int  # optimizer step at which it was first seen
    origin: int | None = None  # index of the start molecule it was reached from
    similarity: float | None = None  # to that start molecule
    error: str | None = None
    properties: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0  # wall time since the oracle was created
    components: dict[str, float] = field(default_factory=dict)  # named parts of the score (scoring files)


class Oracle:
    """Scores molecules with ``objective`` under ``constraints``, at most ``budget`` calls.

    Args:
        objective: an :class:`Objective` or a spec string.
        budget: maximum number of oracle calls (None: unlimited).
        constraints: a :class:`ConstraintSet` or constraint strings.
        starts: start molecules (SMILES); ``origins`` passed to :meth:`__call__`
            index into them, for the similarity column and ``sim`` constraints.
        log_path: JSONL file to append every call to (created, truncated first).
        timeout: seconds a user objective may spend on one molecule; a slower molecule is a
            logged failure (None: no limit).
        sanity: the :class:`SanityFilter` new molecules must pass before they are scored
            (None: no filter).
        diversity: a :class:`~molgen.optimize.diversity.ScaffoldMemory`; scores pass through it, and
            records keep the unfiltered score in ``components["objective_unfiltered"]``.
        require: an object whose ``violation(smiles)`` is None or a reason, e.g. a
            :class:`~molgen.generate.substructure.CoreFilter`; molecules with a reason are infeasible (no call).
    """

    def __init__(
        self,
        objective: Objective | str,
        budget: int | None = None,
        constraints: ConstraintSet | Sequence[str] | None = None,
        starts: Sequence[str] | None = None,
        log_path: str | Path | None = None,
        timeout: float | None = None,
        sanity: SanityFilter | None = None,
        diversity=None,
        require=None,
    ) -> None:
        if budget is not None and budget < 1:
            raise ConfigError("--budget must be at least 1 oracle call")
        if timeout is not None and not timeout > 0:
            raise ConfigError("--timeout must be a positive number of seconds")
        self.timeout = timeout
        self.sanity = sanity
        self.diversity = diversity
        self.require = require
        self.objective = parse_objective(objective)
        self.budget = budget
        self.constraints = constraints if isinstance(constraints, ConstraintSet) else ConstraintSet.parse(constraints or [])
        self.starts = [_canonical_start(s) for s in (starts or [])]
        if self.constraints.uses_similarity and not self.starts:
            raise ConfigError("a sim>= constraint needs a start molecule; pass --start SMILES")
        self._start_fps = [chem.morgan_fingerprint(s) for s in self.starts]
        # Alerts a lead carries are not held against the molecules found from it (molgen.optimize.sanity).
        self.lead_alerts = [sanity.lead_alerts(s) for s in self.starts] if sanity is not None else []
        self.records: dict[str, OracleRecord] = {}
        self._extra_properties: list[str] = []
        self.history: list[OracleRecord] = []  # charged calls, in order
        self.counts = {"invalid": 0, "duplicate": 0, "infeasible": 0, "filtered": 0, "failed": 0}
        self._t0 = time.perf_counter()
        self._log = None
        if log_path is not None:
            Path(log_path).parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log_path, "w", encoding="utf-8")

    # -- accounting ------------------------------------------------------------
    @property
    def calls(self) -> int:
        return len(self.history)

    @property
    def remaining(self) -> float:
        return math.inf if self.budget is None else self.budget - self.calls

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0

    def best_so_far(self) -> np.ndarray:
        """Best score after each call (NaN until the first successful one)."""
        scores = np.array([r.score for r in self.history], dtype=float)
        if not len(scores):
            return scores
        best = np.maximum.accumulate(np.where(np.isnan(scores), -np.inf, scores))
        best[np.isneginf(best)] = np.nan
        return best

    def top(self, k: int | None = None) -> list[OracleRecord]:
        """Successfully scored molecules, best first."""
        ok = [r for r in self.history if r.status == "ok"]
        ok.sort(key=lambda r: (-r.score, r.call))
        return ok if k is None else ok[:k]

    # -- properties ------------------------------------------------------------
    @property
    def property_names(self) -> list[str]:
        """Built-in properties computed for every new molecule: the objective's, the constraints', the tracked ones."""
        constrained = [c.prop for c in self.constraints if c.prop in chem.PROPERTIES]
        wanted = [*self.objective.property_names, *constrained, *self._extra_properties]
        return list(dict.fromkeys(n for n in wanted if n in chem.PROPERTIES))

    def track_properties(self, names: Iterable[str]) -> None:
        """Also compute these built-in properties for every new molecule (e.g. an optimizer's refit targets)."""
        self._extra_properties.extend(n for n in names if n in chem.PROPERTIES and n not in self._extra_properties)

    def complete_properties(self, records: Iterable[OracleRecord] | None = None, n_jobs: int | None = None) -> None:
        """Fill in every built-in property the records lack (default: the scored molecules), in one batch."""
        todo = [r for r in (self.history if records is None else records) if any(n not in r.properties for n in chem.PROPERTIES)]
        if not todo:
            return
        missing = [n for n in chem.PROPERTIES if any(n not in r.properties for r in todo)]
        frame = chem.compute_properties([r.smiles for r in todo], missing, n_jobs=n_jobs)
        for record, values in zip(todo, frame[missing].itertuples(index=False)):
            for name, value in zip(missing, values):
                record.properties.setdefault(name, float(value))

    # -- scoring -------------------------------------------------------------
    def __call__(
        self,
        smiles: Sequence[str | None],
        step: int = 0,
        origins: Sequence[int | None] | None = None,
        canonical: Mapping[str, str | None] | None = None,
        properties: Mapping[str, Sequence[float] | None] | None = None,
    ) -> np.ndarray:
        """Scores aligned with ``smiles``: NaN for invalid, infeasible, failed or over-budget molecules.

        ``canonical`` (input string -> its :func:`~molgen.chem.canonical_smiles`) and ``properties``
        (canonical SMILES -> values of :attr:`property_names`, in that order, as
        :func:`~molgen.chem.compute_properties` gives them) are work already done elsewhere; the
        oracle does the rest itself.
        """
        smiles = list(smiles)
        origins = list(origins) if origins is not None else [None] * len(smiles)
        if len(origins) != len(smiles):
            raise ConfigError("origins must be as long as smiles")
        canon = self._canonicalize(smiles, canonical or {})
        new: dict[str, int | None] = {}
        for s, o in zip(canon, origins):
            if s is None:
                self.counts["invalid"] += 1
            elif s in self.records or s in new:
                self.counts["duplicate"] += 1
            else:
                new[s] = o
        self._score_new(new, step, properties or {})
        return np.array([self._value(s, o) for s, o in zip(canon, origins)], dtype=float)

    def _canonicalize(self, smiles: list[str | None], known: Mapping[str, str | None]) -> list[str | None]:
        # Decoders already return canonical SMILES; only strings not seen before are re-canonicalised.
        return [s if s is None or s in self.records else known[s] if s in known else chem.canonical_smiles(s) for s in smiles]

    def _value(self, smiles: str | None, origin: int | None) -> float:
        record = self.records.get(smiles) if smiles is not None else None
        if record is None or record.status != "ok":
            return math.nan
        if origin is not None and self.constraints.uses_similarity and self.constraints.violations({}, self.similarity(smiles, origin)):
            return math.nan
        return record.score

    def similarity(self, smiles: str, origin: int | None) -> float | None:
        if origin is None or not self.starts:
            return None
        return float(chem.tanimoto(chem.morgan_fingerprint(smiles), self._start_fps[origin]))

    def meets_similarity(self, smiles: Sequence[str], origins: Sequence[int | None] | None = None) -> list[bool]:
        """Whether each molecule meets the ``sim`` constraints to its origin (its most similar start
        where None), without scoring, charging or recording it: an optimizer drops the candidates the
        oracle would refuse as infeasible before it ranks them. All True without a similarity constraint."""
        floors = [c for c in self.constraints.constraints if c.prop == "sim"]
        if not floors or not self.starts:
            return [True] * len(smiles)
        origins = list(origins) if origins is not None else [None] * len(smiles)
        out = []
        for s, origin in zip(smiles, origins):
            fp = chem.morgan_fingerprint(s)
            sims = chem.bulk_tanimoto(fp, self._start_fps)
            sim = float(sims[origin] if origin is not None else max(sims))
            out.append(all(c.satisfied(sim) for c in floors))
        return out

    def _nearest_start(self, smiles: str) -> int | None:
        """The most similar start (lead): the similarity floor holds to it when the optimizer names no origin."""
        if not self.starts:
            return None
        return int(np.argmax(chem.bulk_tanimoto(chem.morgan_fingerprint(smiles), self._start_fps)))

    def _property_rows(self, smiles: list[str], known: Mapping[str, Sequence[float] | None]) -> list[dict[str, float]]:
        """The :attr:`property_names` of each molecule: from ``known`` where given, else computed (in one batch)."""
        names = self.property_names
        todo = [s for s in smiles if known.get(s) is None]
        computed = chem.compute_properties(todo, names) if todo and names else None
        rows = dict(zip(todo, computed[names].itertuples(index=False))) if computed is not None else {}
        return [{k: float(v) for k, v in zip(names, rows.get(s, known.get(s) or ()))} for s in smiles]

    def _score_new(self, new: dict[str, int | None], step: int, known: Mapping[str, Sequence[float] | None]) -> None:
        if not new:
            return
        names = list(new)
        columns = self.property_names
        origins = [new[s] if new[s] is not None else self._nearest_start(s) for s in names]
        sims = [self.similarity(s, o) for s, o in zip(names, origins)]
        # Near a lead most new molecules fall below the similarity floor (15,714 of 15,914 in a 0.6-floor
        # lead search), and their properties were a sixth of its time. Where the floor is the only
        # constraint and no refit asked for every molecule's properties (track_properties), a molecule
        # below it is infeasible whatever they are, so they are not computed.
        skip = set()
        if self.constraints.uses_similarity and not self._extra_properties and all(c.prop == "sim" for c in self.constraints.constraints):
            skip = {s for s, sim in zip(names, sims) if self.constraints.violations({}, sim)}
        computed = dict(zip((todo := [s for s in names if s not in skip]), self._property_rows(todo, known)))
        feasible, pending = [], {}
        for s, origin, sim in zip(names, origins, sims):
            row = computed.get(s, {})
            broken = self.constraints.violations(row, sim)
            reasons = ["violates " + ", ".join(broken)] if broken else []
            if self.require is not None and (reason := self.require.violation(s)):
                reasons.append(reason)
            if reasons:
                self.counts["infeasible"] += 1
                self._store(OracleRecord(s, math.nan, "infeasible", None, step, origin, sim, "; ".join(reasons), row))
            elif self.sanity is not None and (why := self.sanity.reason(s, self._allowed_alerts(origin))) is not None:
                self.counts["filtered"] += 1
                self._store(OracleRecord(s, math.nan, "filtered", None, step, origin, sim, why, row))
            elif len(feasible) >= self.remaining:
                continue
            elif self.diversity is not None and (why := self.diversity.full_reason(s, pending)) is not None:
                self.counts["filtered"] += 1
                self._store(OracleRecord(s, math.nan, "filtered", None, step, origin, sim, why, row))
            else:
                feasible.append((s, origin, sim, row))
        if not feasible:
            return
        scored = self.objective.score([f[0] for f in feasible], {k: [f[3][k] for f in feasible] for k in columns}, self.timeout)
        parts = scored.components or [{}] * len(feasible)
        for (s, origin, sim, row), value, error, part in zip(feasible, scored.values, scored.errors, parts):
            status = "ok" if error is None else "failed"
            self.counts["failed"] += status == "failed"
            if self.diversity is not None and status == "ok":
                part = {**part, "objective_unfiltered": float(value)}
                value = self.diversity.filter(s, float(value))
            record = OracleRecord(s, float(value), status, self.calls + 1, step, origin, sim, error, row, components=part)
            self.history.append(record)
            self._store(record)
        if self._log is not None:
            self._log.flush()

    def _allowed_alerts(self, origin: int | None) -> frozenset[int]:
        return self.lead_alerts[origin] if origin is not None and self.lead_alerts else frozenset()

    def _store(self, record: OracleRecord) -> None:
        record.seconds = time.perf_counter() - self._t0
        self.records[record.smiles] = record
        if self._log is not None:
            line = {
                "call": record.call,
                "smiles": record.smiles,
                "score": None if math.isnan(record.score) else record.score,
                "status": record.status,
                "step": record.step,
                "start": self.starts[record.origin] if record.origin is not None and self.starts else None,
                "similarity": record.similarity,
                "error": record.error,
                "seconds": round(record.seconds, 3),
            }
            if record.components:
                line["components"] = {k: None if math.isnan(v) else v for k, v in record.components.items()}
            self._log.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Oracle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _canonical_start(smiles: str) -> str:
    return chem.canonical_smiles(chem.parse_smiles(smiles))
