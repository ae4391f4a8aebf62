"""The non-dominated (Pareto) set of scored molecules over 2-3 objectives, as a CSV and a plot.

A molecule is dominated when another one is at least as good on every objective
and better on one; all objectives are maximised (a scoring file's
desirabilities are). ``molgen optimize --pareto`` writes ``pareto.csv`` (the
front, best aggregate first) and ``pareto.png`` (every scored molecule in grey,
the front in colour; one panel per pair of objectives).

    >>> import numpy as np
    >>> pareto_mask(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.4, 0.4]])).tolist()
    [True, True, True, False]
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from molgen.errors import ConfigError
from molgen.utils.io import atomic_output

__all__ = ["pareto_mask", "pareto_front", "write_pareto", "PARETO_FILES"]

PARETO_FILES = {"csv": "pareto.csv", "plot": "pareto.png"}


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` [n, k] that no other row dominates (rows with NaN never belong)."""
    v = np.asarray(values, dtype=float)
    ok = ~np.isnan(v).any(1)
    mask = np.zeros(len(v), dtype=bool)
    idx = np.flatnonzero(ok)
    # Sorting by the first objective (descending) lets each row be compared only with the front so far.
    order = idx[np.lexsort(tuple(-v[idx, j] for j in reversed(range(v.shape[1]))))]
    front: list[int] = []
    for i in order:
        row = v[i]
        dominated = any(np.all(v[j] >= row) and np.any(v[j] > row) for j in front)
        if not dominated:
            front.append(i)
    mask[front] = True
    return mask


def pareto_front(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """The rows of ``frame`` on the Pareto front of ``columns`` (2 or 3), in the frame's order."""
    if not 2 <= len(columns) <= 3:
        raise ConfigError(f"a Pareto front needs 2 or 3 objectives, got {len(columns)}; list them with pareto = [...] in the scoring file")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"no column {missing[0]!r} to build the Pareto front from")
    return frame[pareto_mask(frame[columns].to_numpy(dtype=float))]


def write_pareto(frame: pd.DataFrame, columns: list[str], out_dir: str | Path) -> dict[str, Path]:
    """Write ``pareto.csv`` and ``pareto.png`` for ``columns`` of ``frame``; returns their paths."""
    out = Path(out_dir)
    front = pareto_front(frame, columns)
    with atomic_output(out / PARETO_FILES["csv"], "w") as fh:
        front.to_csv(fh, index=False, float_format="%.6g")
    paths = {"pareto_csv": out / PARETO_FILES["csv"]}
    if len(frame):
        paths["pareto_plot"] = _plot(frame, front, columns, out / PARETO_FILES["plot"])
    return paths


def _plot(frame: pd.DataFrame, front: pd.DataFrame, columns: list[str], path: Path) -> Path:
    from molgen.viz import plt, save_figure

    pairs = list(combinations(columns, 2))
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs):
        ax.scatter(frame[a], frame[b], s=8, c="0.75", label="scored")
        edge = front.sort_values(a)
        ax.scatter(edge[a], edge[b], s=22, c="tab:red", label=f"Pareto front ({len(front)})")
        if len(columns) == 2:
            ax.plot(edge[a], edge[b], c="tab:red", lw=0.8)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
