"""The files an optimization run leaves in its output folder.

* ``molecules.csv`` -- every successfully scored molecule, best first: rank,
  SMILES, objective, every built-in property, similarity to the start
  molecule it was reached from (empty without one), that start molecule, the
  optimizer step and the oracle call at which it was found;
* ``top_molecules.png`` -- a grid of the best molecules with their scores;
* ``best_so_far.png`` -- best score (and mean of the top 10) against oracle calls;
* ``oracle_log.jsonl`` -- written live by the :class:`~molgen.optimize.oracle.Oracle`;
* ``summary.json`` -- the resolved settings, seed, environment, timings, counts
  and the top scores.

All files are written atomically.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molgen import chem
from molgen.optimize.oracle import Oracle
from molgen.utils.io import atomic_output, atomic_write_text

__all__ = ["OUTPUT_FILES", "results_frame", "write_outputs", "top_k_curve"]

OUTPUT_FILES = {
    "csv": "molecules.csv",
    "grid": "top_molecules.png",
    "curve": "best_so_far.png",
    "log": "oracle_log.jsonl",
    "summary": "summary.json",
}


def results_frame(oracle: Oracle) -> pd.DataFrame:
    """All successfully scored molecules, ranked by objective (ties: earlier call first)."""
    rows = []
    parts = list(dict.fromkeys(k for r in oracle.history for k in r.components))  # scoring-file columns, in file order
    ranked = oracle.top()
    oracle.complete_properties(ranked)  # the oracle computed only the properties the run needed
    for rank, r in enumerate(ranked, start=1):
        rows.append(
            {
                "rank": rank,
                "smiles": r.smiles,
                "objective": r.score,
                **{k: r.components.get(k, math.nan) for k in parts},
                **{name: r.properties.get(name, math.nan) for name in chem.PROPERTIES},
                "similarity_to_start": r.similarity,
                "start": oracle.starts[r.origin] if r.origin is not None and oracle.starts else None,
                "step": r.step,
                "call": r.call,
            }
        )
    columns = ["rank", "smiles", "objective", *parts, *chem.PROPERTIES, "similarity_to_start", "start", "step", "call"]
    return pd.DataFrame(rows, columns=columns)


def top_k_curve(oracle: Oracle, k: int = 10) -> np.ndarray:
    """Mean of the ``k`` best scores after each call (failures count as missing; fewer than k: mean of those)."""
    best: list[float] = []
    curve = np.full(oracle.calls, np.nan)
    for i, r in enumerate(oracle.history):
        if r.status == "ok":
            best.append(r.score)
            best.sort(reverse=True)
            del best[k:]
        if best:
            curve[i] = float(np.mean(best))
    return curve


def write_outputs(oracle: Oracle, out_dir: str | Path, summary: dict[str, Any] | None = None, n_grid: int = 20) -> dict[str, Path]:
    """Write the CSV, the grid, the curve and ``summary.json`` for everything ``oracle`` has scored."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = results_frame(oracle)
    with atomic_output(out / OUTPUT_FILES["csv"], "w") as fh:
        frame.to_csv(fh, index=False, float_format="%.6g")
    paths = {"csv": out / OUTPUT_FILES["csv"]}
    if len(frame):
        from molgen.viz import molecule_grid

        top = frame.head(n_grid)
        legends = [f"#{r.rank}  {r.objective:.4g}" for r in top.itertuples()]
        grid = molecule_grid(list(top.smiles), out / OUTPUT_FILES["grid"], legends=legends, required=False)
        if grid is not None:
            paths["grid"] = grid
    if oracle.calls:
        paths["curve"] = _plot_curve(oracle, out / OUTPUT_FILES["curve"])
    info = dict(summary or {})
    info.update(
        objective=oracle.objective.spec,
        constraints=str(oracle.constraints),
        budget=oracle.budget,
        oracle_calls=oracle.calls,
        counts=dict(oracle.counts),
        starts=oracle.starts,
        top=[{"smiles": r.smiles, "objective": r.score} for r in oracle.top(10)],
    )
    atomic_write_text(out / OUTPUT_FILES["summary"], json.dumps(info, indent=2, default=_json_default))
    paths["summary"] = out / OUTPUT_FILES["summary"]
    return paths


def _plot_curve(oracle: Oracle, path: Path) -> Path:
    from molgen.viz import plt, save_figure

    calls = np.arange(1, oracle.calls + 1)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(calls, oracle.best_so_far(), label="best so far")
    ax.plot(calls, top_k_curve(oracle, 10), label="mean of top 10", alpha=0.8)
    ax.set_xlabel("oracle calls")
    ax.set_ylabel(f"objective ({oracle.objective.spec})" if len(oracle.objective.spec) < 40 else "objective")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
