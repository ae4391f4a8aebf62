"""User objectives (``--objective file.py:func`` or ``module:func``) in either of two forms.

* per molecule: ``def score(smiles: str) -> float``
* batch: ``def score(smiles: list[str]) -> list[float]`` (one value per molecule, same order)

The form is read, in this order, from a marker (:func:`per_molecule` or
:func:`batch` as decorators), from the first parameter's type annotation
(``str`` vs ``list``/``Sequence``), and otherwise by trying both on the first
molecules scored: the batch call on the batch, then each form on single
molecules. The first form that returns numbers is kept for the rest of the run.
When neither does, :class:`ObjectiveSignatureError` says which signatures
are expected and what each attempt raised.

Example (``my_scores.py``)::

    from molgen.optimize import per_molecule

    @per_molecule
    def score(smiles):
        from rdkit import Chem
        return Chem.MolFromSmiles(smiles).GetNumAtoms() / 50
"""

from __future__ import annotations

import contextlib
import inspect
import numbers
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from molgen.errors import ConfigError

__all__ = ["UserObjective", "ObjectiveSignatureError", "ObjectiveTimeout", "per_molecule", "batch", "EXPECTED_SIGNATURES"]

Form = Literal["molecule", "batch"]
EXPECTED_SIGNATURES = "def f(smiles: str) -> float (one molecule) or def f(smiles: list[str]) -> list[float] (a batch, same order)"
_PROBES = 3  # molecules each form is tried on before the objective is declared unusable


class ObjectiveSignatureError(ConfigError):
    """A user objective works neither per molecule nor on a batch."""


def per_molecule(func: Callable[[str], float]) -> Callable[[str], float]:
    """Mark ``func`` as ``f(smiles: str) -> float`` (no probing)."""
    func.molgen_form = "molecule"
    return func


def batch(func: Callable[[list[str]], Sequence[float]]) -> Callable[[list[str]], Sequence[float]]:
    """Mark ``func`` as ``f(smiles: list[str]) -> list[float]`` (no probing)."""
    func.molgen_form = "batch"
    return func


class UserObjective:
    """A user function adapted to the batch form ``list[str] -> list[float]`` every term uses."""

    def __init__(self, func: Callable, name: str) -> None:
        self.func, self.name = func, name
        self.form: Form | None = getattr(func, "molgen_form", None) or _form_from_annotation(func)
        if self.form not in (None, "molecule", "batch"):
            raise ConfigError(f"objective {name}: molgen_form must be 'molecule' or 'batch', not {self.form!r}")

    def __call__(self, smiles: list[str]) -> list[float]:
        if self.form == "batch":
            return self.func(list(smiles))
        if self.form == "molecule":
            return [_scalar(self.func(s)) for s in smiles]
        return self._probe(list(smiles))

    def _probe(self, smiles: list[str]) -> list[float]:
        try:
            values = _vector(self.func(list(smiles)), len(smiles))
            self.form = "batch"
            return values
        except ObjectiveTimeout:
            raise
        except Exception as exc:  # user code may raise anything; the single-molecule tries below decide
            batch_error = exc
        single_error: Exception | None = None
        for s in smiles[:_PROBES]:
            for form, call in (("molecule", lambda: _scalar(self.func(s))), ("batch", lambda: _vector(self.func([s]), 1))):
                try:
                    call()
                except ObjectiveTimeout:
                    raise
                except Exception as exc:
                    single_error = single_error or exc
                    continue
                self.form = form
                if form == "batch":
                    raise batch_error  # the batch form works: the whole-batch failure was a molecule's; the caller retries one by one
                return [_scalar(self.func(t)) for t in smiles]
        raise ObjectiveSignatureError(
            f"objective {self.name} works neither on a batch nor per molecule: f(list of {len(smiles)}) raised {_describe(batch_error)}; "
            f"f({smiles[0]!r}) raised {_describe(single_error)}. Expected {EXPECTED_SIGNATURES}; "
            "mark the form with @molgen.optimize.per_molecule or @molgen.optimize.batch"
        )


def _form_from_annotation(func: Callable) -> Form | None:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # builtins and some C functions have no signature
        return None
    if not params or params[0].annotation is inspect.Parameter.empty:
        return None
    text = params[0].annotation if isinstance(params[0].annotation, str) else getattr(params[0].annotation, "__name__", str(params[0].annotation))
    text = str(text).replace("typing.", "")
    if text == "str":
        return "molecule"
    if text.split("[")[0] in ("list", "List", "Sequence", "Iterable", "tuple", "Tuple"):
        return "batch"
    return None


def _scalar(value) -> float:
    if isinstance(value, (str, bytes)) or not isinstance(value, (numbers.Real, np.ndarray, np.generic)) or np.ndim(value) != 0:
        raise TypeError(f"returned {type(value).__name__}, not a number")
    return float(value)


def _vector(values, n: int) -> list[float]:
    if isinstance(values, (str, bytes, numbers.Number)) or np.ndim(values) != 1:
        raise TypeError(f"returned {type(values).__name__}, not one number per molecule")
    out = [float(v) for v in values]
    if len(out) != n:
        raise ValueError(f"returned {len(out)} values for {n} molecules")
    return out


def _describe(exc: Exception | None) -> str:
    if exc is None:
        return "nothing"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:160]}".rstrip(": ")


class ObjectiveTimeout(Exception):
    """A user objective ran past its per-molecule time limit."""


@contextlib.contextmanager
def _deadline(seconds: float | None):
    """Raise :class:`ObjectiveTimeout` inside the block after ``seconds`` (SIGALRM: main thread on POSIX
    only; elsewhere no limit). Python code is interrupted at once; a long call into C returns first."""
    usable = seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise ObjectiveTimeout(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
