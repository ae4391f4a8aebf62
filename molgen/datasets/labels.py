"""Measured values per molecule from a CSV (pIC50, solubility, ...): the training data of a label predictor.

    >>> table = read_labels("assay.csv", "pIC50")            # doctest: +SKIP
    >>> table.smiles[:2], table.values[:2, 0], table.names   # doctest: +SKIP
    (['CCO', 'c1ccc2[nH]ccc2c1'], array([5.5, 6. ]), ['pIC50'])

The delimiter is sniffed (',' ';' or a tab); the SMILES column is named, found by
name as the molecule readers find it, or found by content. A row whose SMILES
RDKit rejects, or whose targets are all missing or not numbers, is skipped and
counted (``strict``: the first one is an error naming its line).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from molgen.errors import DataError

__all__ = ["LabelTable", "read_labels"]


@dataclass
class LabelTable:
    """Kept molecules (canonical SMILES), their values ``[N, P]`` (NaN: not measured), the target names, and skips."""

    path: Path
    smiles: list[str]
    values: np.ndarray
    names: list[str]
    n_rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str | None:
        """One line on the skipped rows, or None when every row was kept."""
        if not self.skipped:
            return None
        detail = ", ".join(f"{r}: {n}" for r, n in self.skipped.items())
        return f"{self.path}: {sum(self.skipped.values())} of {self.n_rows} row(s) skipped ({detail})"


def read_labels(path: str | Path, target: str, smiles_column: str | None = None, strict: bool = False, rejects: str | Path | None = None) -> LabelTable:
    """SMILES and the comma-separated ``target`` columns of a CSV; ``rejects`` gets every skipped row with the reason."""
    import pandas as pd

    from molgen import chem

    path = Path(path)
    try:
        # sep=None sniffs the delimiter: ',' ';' (Excel in many locales) or a tab.
        frame = pd.read_csv(path, sep=None, engine="python")
    except (OSError, ValueError, EOFError, pd.errors.ParserError) as exc:  # EOFError: a truncated gzip
        raise DataError(f"cannot read labels from {path} ({str(exc).splitlines()[0]}); pass a CSV with a header") from None
    columns = {str(c).lower(): c for c in frame.columns}
    names = [t.strip() for t in target.split(",") if t.strip()]
    if smiles_column is None:
        smiles_column = _smiles_column(frame, names, path)
    missing = [c for c in [smiles_column, *names] if c.lower() not in columns]
    if missing:
        raise DataError(f"{path} has no column {missing[0]!r}; columns: {', '.join(map(str, frame.columns))}")
    texts = [str(s) for s in frame[columns[smiles_column.lower()]]]
    parsed = [chem.try_parse(s) for s in texts]  # the reason of a bad SMILES: parse, sanitize, too_large, ...
    canon = [chem.canonical_smiles(mol) if mol is not None else None for mol, _ in parsed]
    values = frame[[columns[n.lower()] for n in names]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    reasons = [
        (why or "parse") if c is None else "no_value" if not np.isfinite(v).any() else ""
        for c, (_, why), v in zip(canon, parsed, values)
    ]
    bad = [i for i, r in enumerate(reasons) if r]
    if bad and strict:
        i = bad[0]
        raise DataError(
            f"{path}, line {i + 2}: {reasons[i]} ({texts[i]!r}); fix or remove the row, or leave out --strict to skip bad rows"
        )
    if rejects is not None:
        _write_rejects(Path(rejects), [(i + 2, texts[i], reasons[i]) for i in bad])
    keep = [i for i, r in enumerate(reasons) if not r]
    skipped = {r: reasons.count(r) for r in dict.fromkeys(reasons) if r}
    return LabelTable(path, [canon[i] for i in keep], values[keep], names, len(texts), skipped)


def _write_rejects(path: Path, rows: list[tuple[int, str, str]]) -> None:
    from molgen.utils.io import atomic_output

    with atomic_output(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("line", "text", "reason"))
        writer.writerows(rows)


def _smiles_column(frame, targets: list[str], path: Path) -> str:
    """The SMILES column of a labels table, as the molecule readers find it: by name, else the column whose values parse."""
    from molgen import chem
    from molgen.datasets.tables import SMILES_COLUMN_NAMES

    lowered = [str(c).lower() for c in frame.columns]
    for name in SMILES_COLUMN_NAMES:
        if name in lowered:
            return str(frame.columns[lowered.index(name)])
    named = [c for c, low in zip(frame.columns, lowered) if "smiles" in low]
    if named:
        return str(named[0])
    head = frame.head(20)
    candidates = [c for c in frame.columns if str(c).lower() not in {t.lower() for t in targets} and head[c].dtype == object]
    scores = {c: sum(chem.try_parse(str(v))[0] is not None for v in head[c]) for c in candidates}
    if not scores or max(scores.values()) == 0:
        raise DataError(f"no SMILES column found in {path} (columns: {', '.join(map(str, frame.columns))}); pass --smiles-column NAME")
    return str(max(scores, key=scores.get))
