"""Hard constraints on the molecules an optimizer may return.

A constraint compares a built-in property (a key of
:data:`molgen.chem.PROPERTIES`) or ``sim`` -- the Tanimoto similarity (Morgan
radius 2, 2048 bits) to the start molecule (lead) the candidate was reached from,
or to the most similar lead when the optimizer does not say -- with a number::

    mw<=450   logp<5   qed>=0.5   heavy_atoms<=38   sim>=0.4

Molecules that violate a constraint are never passed to the objective, so
they cost no oracle call; they are logged as ``infeasible``. Constraints that
no molecule can satisfy (``qed>=2``, ``mw<=100`` with ``mw>=200``) are
rejected when the set is built.

Example::

    >>> cs = ConstraintSet.parse(["mw<=450", "sim>=0.4"])
    >>> cs.violations({"mw": 500.0}, similarity=0.5)
    ['mw<=450']
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass

from molgen import chem
from molgen.errors import ConfigError

__all__ = ["Constraint", "ConstraintSet", "PROPERTY_BOUNDS"]

#: Values a property can take at all, used to reject impossible constraints.
PROPERTY_BOUNDS: dict[str, tuple[float, float]] = {
    "qed": (0.0, 1.0),
    "sa": (1.0, 10.0),
    "sim": (0.0, 1.0),
    "mw": (0.0, math.inf),
    "tpsa": (0.0, math.inf),
    "hbd": (0.0, math.inf),
    "hba": (0.0, math.inf),
    "rotb": (0.0, math.inf),
    "rings": (0.0, math.inf),
    "arom_rings": (0.0, math.inf),
    "heavy_atoms": (1.0, math.inf),
}

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_PATTERN = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


@dataclass(frozen=True)
class Constraint:
    """``prop op value``; ``prop`` is a built-in property or ``sim`` (similarity to the start molecule)."""

    prop: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        match = _PATTERN.fullmatch(text)
        if not match:
            raise ConfigError(f"cannot read constraint {text!r}; write e.g. mw<=450, logp<5 or sim>=0.4")
        prop, op, value = match.group(1), match.group(2), float(match.group(3))
        if prop != "sim" and prop not in chem.PROPERTIES:
            raise ConfigError(f"unknown property {prop!r} in constraint {text!r}; use sim or one of {', '.join(chem.PROPERTIES)}")
        return cls(prop, op, value)

    def __str__(self) -> str:
        return f"{self.prop}{self.op}{self.value:g}"

    def satisfied(self, value: float) -> bool:
        return math.isfinite(value) and _OPS[self.op](value, self.value)

    def interval(self) -> tuple[float, float, bool, bool]:
        """``(low, high, low_open, high_open)`` of the values allowed."""
        if self.op in ("<=", "<"):
            return -math.inf, self.value, False, self.op == "<"
        return self.value, math.inf, self.op == ">", False


class ConstraintSet:
    """Several constraints that must all hold; rejects sets no molecule can satisfy."""

    def __init__(self, constraints: Iterable[Constraint] = ()) -> None:
        self.constraints = list(constraints)
        self._check_feasible()

    @classmethod
    def parse(cls, texts: Iterable[str | Constraint]) -> ConstraintSet:
        return cls(c if isinstance(c, Constraint) else Constraint.parse(c) for c in texts)

    def __bool__(self) -> bool:
        return bool(self.constraints)

    def __iter__(self):
        return iter(self.constraints)

    def __str__(self) -> str:
        return ", ".join(map(str, self.constraints)) or "none"

    @property
    def uses_similarity(self) -> bool:
        return any(c.prop == "sim" for c in self.constraints)

    def violations(self, properties: dict[str, float], similarity: float | None = None) -> list[str]:
        """The constraints a molecule breaks (``similarity`` None means no start molecule: sim is not checked)."""
        broken = []
        for c in self.constraints:
            if c.prop == "sim":
                if similarity is not None and not c.satisfied(similarity):
                    broken.append(str(c))
            elif not c.satisfied(float(properties.get(c.prop, math.nan))):
                broken.append(str(c))
        return broken

    def _check_feasible(self) -> None:
        by_prop: dict[str, list[Constraint]] = {}
        for c in self.constraints:
            by_prop.setdefault(c.prop, []).append(c)
        for prop, group in by_prop.items():
            low, high = PROPERTY_BOUNDS.get(prop, (-math.inf, math.inf))
            low_open = high_open = False
            for c in group:
                c_low, c_high, c_low_open, c_high_open = c.interval()
                if c_low > low or (c_low == low and c_low_open):
                    low, low_open = c_low, c_low_open
                if c_high < high or (c_high == high and c_high_open):
                    high, high_open = c_high, c_high_open
            if low > high or (low == high and (low_open or high_open)):
                shown = ", ".join(map(str, group))
                bounds = PROPERTY_BOUNDS.get(prop)
                hint = f" ({prop} always lies in [{bounds[0]:g}, {bounds[1]:g}])" if bounds else ""
                raise ConfigError(f"impossible constraint: no molecule satisfies {shown}{hint}; relax it")
