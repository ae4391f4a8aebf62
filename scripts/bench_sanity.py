"""How the default sanity filter of ``molgen optimize`` changes results: each objective and seed with and without it.

    python scripts/bench_sanity.py --objectives qed pmo:osimertinib_mpo pmo:zaleplon_mpo --budget 300 --seeds 0 1
    python scripts/bench_sanity.py --objectives qed --methods gradient --budget 300 --seeds 0 1 --append

Writes ``docs/sanity_filter.json`` and ``docs/sanity_filter.md``. For every run:
top-1 and top-10 mean score of what the run returns, PMO's AUC top-10 over
the calls made, how many of the top 20 the filter would reject (computed
afterwards for the unfiltered runs), and how many molecules were filtered.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(vae, objective: str, method: str, budget: int, seed: int, sanity: bool) -> dict:
    from molgen.optimize import optimize
    from molgen.optimize.pmo import auc_top_k
    from molgen.optimize.sanity import SanityFilter

    cpu0, t0 = time.process_time(), time.perf_counter()
    result = optimize(objective, model=vae, method=method, budget=budget, seed=seed, sanity_filter=sanity)
    oracle = result.oracle
    top = oracle.top(20)
    scores = [r.score for r in top]
    check = SanityFilter()
    return {
        "objective": objective, "method": method, "budget": budget, "seed": seed, "sanity_filter": sanity,
        "calls": oracle.calls, "filtered": oracle.counts.get("filtered", 0),
        "top1": float(scores[0]) if scores else None,
        "top10": float(np.mean(scores[:10])) if scores else None,
        "auc_top10": float(auc_top_k([r.score for r in oracle.history], budget=budget)),
        "absurd_in_top20": sum(check.reason(r.smiles) is not None for r in top),
        "top3": [r.smiles for r in top[:3]],
        "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1),
    }  # fmt: skip


def _markdown(rows: list[dict], command: str) -> str:
    lines = [
        "# The sanity filter of `molgen optimize`",
        "",
        f"Commands: `{command}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s); {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        "With the filter (the default), molecules with a ring over 8 atoms, an aromatic ring over 7, or an MCF/PAINS",
        "alert are dropped before scoring and cost no oracle call; without it (`--no-sanity-filter`) every new",
        "molecule is scored. `absurd in top 20`: how many of the 20 best molecules the filter rejects.",
        "",
        "| objective | method | seed | filter | calls | filtered | top-1 | top-10 | AUC top-10 | absurd in top 20 | CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['objective']} | {r['method']} | {r['seed']} | {'on' if r['sanity_filter'] else 'off'} | {r['calls']} | {r['filtered']} | "
            f"{r['top1']:.3f} | {r['top10']:.3f} | {r['auc_top10']:.3f} | {r['absurd_in_top20']} | {r['cpu_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objectives", nargs="+", default=["qed", "pmo:osimertinib_mpo", "pmo:zaleplon_mpo"])
    parser.add_argument("--methods", nargs="+", default=["bo"])
    parser.add_argument("--append", action="store_true", help="add these runs to the existing JSON (and rewrite the table from all)")
    parser.add_argument("--budget", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=str(ROOT / "docs" / "sanity_filter.json"))
    parser.add_argument("--md", default=str(ROOT / "docs" / "sanity_filter.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load("default", device="cpu")
    previous = json.loads(Path(args.json).read_text()) if args.append else {"commands": [], "runs": []}
    rows = list(previous["runs"])
    for method in args.methods:
        for objective in args.objectives:
            for seed in args.seeds:
                for sanity in (False, True):
                    rows.append(_run(vae, objective, method, args.budget, seed, sanity))
                    print(json.dumps(rows[-1]), flush=True)
    command = "python scripts/bench_sanity.py " + " ".join(
        ["--objectives", *args.objectives, "--methods", *args.methods, "--budget", str(args.budget), "--seeds", *map(str, args.seeds)]
    )
    commands = [*previous.get("commands", []), command + (" --append" if args.append else "")]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Path(args.json).write_text(json.dumps({"commands": commands, "peak_rss_mb": round(peak), "runs": rows}, indent=2))
    Path(args.md).write_text(_markdown(rows, "`; `".join(commands)))


if __name__ == "__main__":
    main()
