"""Design-workflow benchmarks: diversity filter, keeping a core, docking oracle (docs/design_benchmarks.md).

Reproduce (CPU; each command writes ``docs/design_<task>.json`` and prints Markdown)::

    python scripts/bench_design.py diversity --budget 300 --bucket-size 1 --seeds 0
    python scripts/bench_design.py core --n 1000 --budget 500
    python scripts/bench_design.py dock-speed --n 20 --workers 2
    python scripts/bench_design.py dock-bo --budget 200 --seeds 0 1 2

Every JSON records the command, machine, date, CPU and wall seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _cpu() -> float:
    self_, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self_.ru_utime + self_.ru_stime + children.ru_utime + children.ru_stime


def _save(task: str, payload: dict) -> None:
    payload = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} CPUs)",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **payload,
    }
    DOCS.mkdir(exist_ok=True)
    (DOCS / f"design_{task}.json").write_text(json.dumps(payload, indent=2, default=float))
    print(json.dumps(payload, indent=2, default=float))


def _scaffolds(smiles: list[str], generic: bool = False) -> int:
    from molgen.optimize.diversity import murcko_scaffold

    return len({murcko_scaffold(s, generic) for s in smiles})


def diversity(args) -> None:
    """QED by BO with and without the scaffold memory: scaffolds among the top 100, top-10 mean QED."""
    from molgen.optimize import optimize

    rows = []
    for seed in args.seeds:
        for k in (0, args.bucket_size) if not args.filtered_only else (args.bucket_size,):
            t0, c0 = time.perf_counter(), _cpu()
            result = optimize("qed", model=args.model, method=args.method, budget=args.budget, seed=seed, diversity=k or None,
                              start=args.start, options=dict(json.loads(o) for o in args.option) if args.option else None,
                              out_dir=Path(args.out) / f"{args.method}_k{k}_s{seed}")  # fmt: skip
            top = result.frame.head(100)
            raw = top["objective_unfiltered"] if "objective_unfiltered" in top else top["objective"]
            rows.append({
                "seed": seed, "bucket_size": k, "top100_scaffolds": _scaffolds(list(top.smiles)),
                "top100_generic_scaffolds": _scaffolds(list(top.smiles), True),
                "top10_mean_qed": float(np.mean(raw.head(10))), "top100_mean_qed": float(np.mean(raw)),
                "best_qed": float(result.frame["qed"].max()), "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1),
            })  # fmt: skip
            print(rows[-1], flush=True)
    name = f"diversity_{args.method}" + ("_lead" if args.start else "") + "".join(f"_{v}" for o in args.option for v in json.loads(o)[1:])
    name += "_filtered" if args.filtered_only else ""
    _save(name, {"budget": args.budget, "method": args.method, "start": args.start, "options": args.option, "rows": rows})


CORES = {"sulfonamide": "S(=O)(=O)N", "indole": "c1ccc2[nH]ccc2c1", "quinazoline": "c1ccc2ncncc2c1"}


def core(args) -> None:
    """Per core: decodes per kept molecule (seeded vs blind prior sampling), yield, scaffolds beyond the core;
    then QED optimization with the indole core against sampling indoles at the same budget."""
    from molgen.generate.substructure import (
        CoreFilter,
        find_core_seeds,
        sample_with_core,
    )
    from molgen.optimize import optimize
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(args.model, device="cpu")
    rows = []
    for name, smarts in CORES.items() if args.n else ():
        t0, c0 = time.perf_counter(), _cpu()
        mols, stats = sample_with_core(vae, [smarts], args.n, seed=0)
        blind, bstats = sample_with_core(vae, [smarts], args.n_blind, seed=0, use_training_seeds=False, noise=0.0, max_decodes=args.blind_decodes)
        rows.append({
            "core": name, "smarts": smarts, "seed_molecules": stats.seeds, "kept": stats.kept, "decoded": stats.decoded,
            "decodes_per_kept": round(stats.decodes_per_kept, 2), "valid_fraction": round(stats.valid / stats.decoded, 3),
            "match_fraction_of_valid": round(stats.matched / max(stats.valid, 1), 3),
            "scaffolds": _scaffolds(mols), "new_vs_seeds": round(len(set(mols) - set(find_core_seeds(CoreFilter([smarts])))) / max(len(mols), 1), 3),
            "blind_decodes": bstats.decoded, "blind_kept": bstats.kept, "blind_decodes_per_kept": round(bstats.decodes_per_kept, 1),
            "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1),
        })  # fmt: skip
        print(rows[-1], flush=True)
    indole = CORES["indole"]
    from molgen import chem

    opt, random_top10 = {}, {}
    for seed in args.seeds:
        # "Random": the first B indoles of seeded sampling from the same model (its own seed, seed + 1).
        random_mols, _ = sample_with_core(vae, [indole], args.budget, seed=seed + 1)
        qed_random = sorted((chem.qed(chem.parse_smiles(s)) for s in random_mols), reverse=True)
        random_top10[seed] = float(np.mean(qed_random[:10]))
        for method in args.methods:
            t0, c0 = time.perf_counter(), _cpu()
            # The CLI's defaults (molgen optimize --objective qed --substructure ... --budget B --method M).
            result = optimize("qed", model=vae, method=method, budget=args.budget, substructure=[indole], seed=seed,
                              out_dir=Path(args.out) / f"core_{method}_s{seed}")  # fmt: skip
            frame = result.frame
            opt.setdefault(method, {})[seed] = {
                "top10_mean_qed": float(frame.objective.head(10).mean()), "random_top10_mean_qed": random_top10[seed],
                "all_indoles": bool(all(CoreFilter([indole]).matches(s) for s in frame.smiles)), "calls": result.oracle.calls,
                "stop": result.summary["stop"]["rule"], "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1),
            }  # fmt: skip
            print(method, seed, opt[method][seed], flush=True)
    _save("core" if args.n else "core_optimize", {"n": args.n, "rows": rows, "qed_budget": args.budget, "random_indoles_top10_mean_qed": random_top10, "optimize": opt})


def _docking_toml(args, tmp: Path) -> Path:
    text = (ROOT / "configs" / "scoring_docking.toml").read_text()
    text = text.replace("../data/receptors/", str(ROOT / "data" / "receptors") + "/")
    text = text.replace("exhaustiveness = 4", f"exhaustiveness = {args.exhaustiveness}").replace("workers = 2", f"workers = {args.workers}")
    text = text.replace("size = [20.0, 20.0, 20.0]", f"size = [{args.box}, {args.box}, {args.box}]")
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "scoring_docking.toml"
    path.write_text(text)
    return path


def dock_speed(args) -> None:
    """Seconds per docked molecule (embedded MOSES test molecules) with N worker processes."""
    from molgen.datasets import default_test_smiles
    from molgen.optimize.scoring import load_scoring

    objective = load_scoring(_docking_toml(args, Path(args.out)))
    dock = objective.evaluators[0]
    smiles = default_test_smiles(limit=args.n)
    t0, c0 = time.perf_counter(), _cpu()
    values, errors = dock(smiles)
    wall = time.perf_counter() - t0
    dock.close()
    _save("dock_speed", {"molecules": len(smiles), "workers": args.workers, "exhaustiveness": args.exhaustiveness, "box": args.box,
                         "failed": int(sum(e is not None for e in errors)), "median_score": float(np.nanmedian(values)),
                         "wall_s_per_molecule": round(wall / len(smiles), 2), "cpu_s": round(_cpu() - c0, 1), "wall_s": round(wall, 1)})  # fmt: skip


def dock_bo(args) -> None:
    """BO vs random screening (prior samples) on the docking scoring file's aggregate, same budget, several seeds."""
    from molgen.optimize import Oracle, optimize
    from molgen.optimize.scoring import load_scoring
    from molgen.vae import MoleculeVAE

    path = _docking_toml(args, Path(args.out))
    vae = MoleculeVAE.load(args.model, device="cpu")
    rows = []
    for seed in args.seeds:
        t0, c0 = time.perf_counter(), _cpu()
        opts = {"batch_size": args.batch_size, "n_init": args.n_init}
        bo = optimize(str(path), model=vae, method="bo", budget=args.budget, seed=seed, options=opts, out_dir=Path(args.out) / f"bo_s{seed}", pareto=True)
        t1, c1 = time.perf_counter(), _cpu()
        objective = load_scoring(path)
        oracle = Oracle(objective, args.budget)
        drawn = vae.sample(args.budget * 4, seed=seed)
        for i in range(0, len(drawn), args.batch_size):
            if oracle.exhausted:
                break
            oracle(drawn[i : i + args.batch_size])
        objective.close()
        rand = sorted((r.score for r in oracle.top()), reverse=True)
        bo_top = list(bo.frame.objective)
        rows.append({
            "seed": seed, "budget": args.budget, "bo_top1": bo_top[0], "bo_top10_mean": float(np.mean(bo_top[:10])),
            "random_top1": rand[0], "random_top10_mean": float(np.mean(rand[:10])), "random_calls": oracle.calls,
            "bo_best_dock": float(bo.frame.dock_raw.min()), "random_best_dock": float(min(r.components["dock_raw"] for r in oracle.top())),
            "bo_wall_s": round(t1 - t0, 1), "bo_cpu_s": round(c1 - c0, 1), "random_wall_s": round(time.perf_counter() - t1, 1),
        })  # fmt: skip
        print(rows[-1], flush=True)
    _save("dock_bo", {"exhaustiveness": args.exhaustiveness, "box": args.box, "workers": args.workers, "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="task", required=True)
    p = sub.add_parser("diversity")
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--bucket-size", type=int, default=1)
    p.add_argument("--method", default="bo")
    p.add_argument("--filtered-only", action="store_true", help="only the runs with the filter (the unfiltered ones are unchanged by a filter change)")
    p.add_argument("--option", action="append", default=[], help='a method option as a JSON pair, e.g. ["n_starts", 64]')
    p.add_argument("--start", default=None, help="a lead: the QED run improves it (a search that stays near one chemotype)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--model", default=None)
    p.add_argument("--out", default="runs/design/diversity")
    p = sub.add_parser("core")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--n-blind", type=int, default=20)
    p.add_argument("--blind-decodes", type=int, default=2048)
    p.add_argument("--budget", type=int, default=500)
    p.add_argument("--methods", nargs="+", default=["gradient"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the QED optimization with the indole core")
    p.add_argument("--model", default=None)
    p.add_argument("--out", default="runs/design/core")
    for name in ("dock-speed", "dock-bo"):
        p = sub.add_parser(name)
        p.add_argument("--n", type=int, default=20)
        p.add_argument("--workers", type=int, default=2)
        p.add_argument("--exhaustiveness", type=int, default=4)
        p.add_argument("--box", type=float, default=20.0)
        p.add_argument("--budget", type=int, default=200)
        p.add_argument("--batch-size", type=int, default=10)
        p.add_argument("--n-init", type=int, default=20)
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--model", default=None)
        p.add_argument("--out", default=f"runs/design/{name}")
    args = parser.parse_args()
    {"diversity": diversity, "core": core, "dock-speed": dock_speed, "dock-bo": dock_bo}[args.task](args)


if __name__ == "__main__":
    main()
