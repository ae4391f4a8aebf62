"""Lead-optimization benchmark: improve a lead under a similarity floor, gradient vs BO vs random near the lead.

For each lead (from the 800-molecule constrained set, ``data/opt_test_800.logP-SA``,
and drug-like MOSES test molecules), each objective (pLogP, QED, and ``pred:activity``,
a predictor learned from a synthetic 500-molecule assay) and each similarity floor,
every method gets the same oracle budget; a molecule counts only if it is within the
floor of its lead (Tanimoto, Morgan r=2, 2,048 bits). Reported per method and floor:
success rate (a molecule better than the lead was found), mean improvement over the
lead (failures as 0), distinct feasible molecules found (oracle calls) and the share of
leads on which >= 90 % of the budget went to distinct feasible molecules.

Methods: ``gradient`` (``molgen optimize --method gradient`` with a start molecule:
the lead search of :mod:`molgen.optimize.explore`); ``bo`` (``--method bo``, defaults);
``random`` (z = z_lead + s * N(0, I) with s drawn from [0.05, 0.6] per point, sampled
decodes at temperature 1, until the budget is spent or 100 decodes per call were made).

Reproduce (the full grid is 40 leads x 3 objectives x 2 floors x 3 methods; sizes are flags)::

    nice -n 5 python scripts/bench_leadopt.py --zinc-leads 20 --druglike-leads 20 --budget 200
    nice -n 5 python scripts/bench_leadopt.py --zinc-leads 3 --druglike-leads 3 --methods gradient random bo   # reduced

Writes ``<out>/results.jsonl`` (one line per run, resumable: finished runs are
skipped; ``--shard i/n`` splits the leads over n processes, each with its own
``results.<i>of<n>.jsonl``, and ``--report`` tabulates all of them), ``docs/leadopt_benchmarks.json`` and ``docs/leadopt_benchmarks.md``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import os
import platform
import resource
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPT_TEST = ROOT / "data" / "opt_test_800.logP-SA"
MOSES_TEST = ROOT / "data" / "moses_test_5k.smi.gz"
MOSES_TRAIN = ROOT / "data" / "moses_train_50k.smi.gz"
ZINC = ROOT / "data" / "zinc250k.smi.gz"
OBJECTIVES = {"plogp": "plogp", "qed": "qed", "activity": "pred:activity"}


def synthetic_assay(n: int = 500, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """``n`` MOSES training molecules with a made-up pIC50-like ``activity``: a noisy function of
    logP, TPSA, aromatic rings, distance from MW 330 and an amide, plus N(0, 0.45) noise (std of activity ~0.9)."""
    from rdkit import Chem

    from molgen import chem

    with gzip.open(MOSES_TRAIN, "rt") as fh:
        pool = [line.split()[0] for _, line in zip(range(20_000), fh)]
    rng = np.random.default_rng(seed)
    smiles = [pool[i] for i in rng.choice(len(pool), n, replace=False)]
    p = chem.compute_properties(smiles)
    amide = Chem.MolFromSmarts("C(=O)N")
    has_amide = np.array([Chem.MolFromSmiles(s).HasSubstructMatch(amide) for s in smiles], dtype=float)
    activity = 5 + 0.45 * p.logp - 0.012 * p.tpsa + 0.35 * p.arom_rings - 0.4 * np.abs(p.mw - 330) / 100 + 0.6 * has_amide
    return smiles, (activity + rng.normal(0, 0.45, n)).to_numpy()


def leads(vae, n_zinc: int, n_druglike: int, seed: int = 0) -> list[tuple[str, str]]:
    """(set, SMILES): evenly spaced molecules of the constrained set, and drug-like MOSES test molecules
    (QED >= 0.7, MW 250-450), both limited to molecules the model can write.

    The ``zinc`` model writes no stereocentres: 135 of the 800 constrained-set molecules. The first
    picks are the writable ones among every (800 // n)-th molecule (what this function picked before
    2026-12-07, so stored runs stay valid); the rest are spread evenly over the other writable ones."""
    from molgen import chem

    zinc = [line.split()[0] for line in OPT_TEST.read_text().splitlines() if line.strip()]
    with gzip.open(MOSES_TEST, "rt") as fh:
        moses = [line.split()[0] for line in fh if line.strip()]
    rng = np.random.default_rng(seed)
    moses = [moses[i] for i in rng.permutation(len(moses))[:500]]
    props = chem.compute_properties(moses, ["qed", "mw"])
    druglike = [s for s, q, m in zip(moses, props.qed, props.mw) if q >= 0.7 and 250 <= m <= 450]
    _, writable = vae.encode(zinc)
    stride = max(1, len(zinc) // max(n_zinc, 1))
    first = [i for i in writable if i % stride == 0][:n_zinc]
    rest = [i for i in writable if i % stride != 0]
    need = n_zinc - len(first)
    picked = first + (rest[:: max(1, len(rest) // need)][:need] if need > 0 else [])
    _, kept = vae.encode(druglike)
    out = [[("zinc800", zinc[i]) for i in picked], [("druglike", druglike[i]) for i in kept[:n_druglike]]]
    # Alternate the two sets, so a run stopped part-way (or one shard) has leads of both.
    return [lead for pair in itertools.zip_longest(*out) for lead in pair if lead is not None]


_STREAM: dict[tuple[str, int], list[list[str]]] = {}


def random_near_lead(ctx) -> dict[str, Any]:
    """Baseline: z = z_lead + s * N(0, I), s ~ U(0.05, 0.6) per point, sampled decodes, until the budget is spent.

    The decoded stream depends only on the lead and the seed, not on the objective or the floor, so it is
    decoded once per lead and replayed to every random run of that lead (the same molecules in the same order
    as decoding afresh: decoding is deterministic for a seed); ``decode_cpu_s`` is the CPU time this run spent decoding.
    """
    import torch

    from molgen.generate.decoding import DecodeOptions

    key = (ctx.starts[0], ctx.seed)
    if key not in _STREAM:
        _STREAM.clear()  # one lead at a time: runs are ordered by lead
        _STREAM[key] = []
    stream = _STREAM[key]
    z_lead = torch.from_numpy(ctx.vae.encode(ctx.starts)[0][:1])
    gen = torch.Generator().manual_seed(ctx.seed)
    decoded, batch, limit, cpu = 0, 64, 100 * (ctx.oracle.budget or 1000), 0.0
    while not ctx.oracle.exhausted and decoded < limit:
        index = decoded // batch
        if index == len(stream):
            t0 = time.process_time()
            scale = 0.05 + 0.55 * torch.rand(batch, 1, generator=gen)
            z = z_lead + scale * torch.randn(batch, z_lead.size(1), generator=gen)
            seed = int(torch.randint(2**31 - 1, (1,), generator=gen))
            stream.append(ctx.vae.decode(z.numpy(), DecodeOptions(strategy="sample", temperature=1.0), seed=seed))
            cpu += time.process_time() - t0
        else:  # keep the generator where decoding afresh would leave it
            torch.rand(batch, 1, generator=gen), torch.randn(batch, z_lead.size(1), generator=gen), torch.randint(2**31 - 1, (1,), generator=gen)
        ctx.oracle(stream[index], origins=[0] * batch)
        decoded += batch
    return {"decoded": decoded, "decode_cpu_s": round(cpu, 2),
            "stop": {"rule": "budget spent" if ctx.oracle.exhausted else "decode limit", "detail": ""}}


def run_one(vae, predictors, lead: str, objective: str, floor: float, method: str, budget: int, gradient_options: dict) -> dict:
    from molgen.errors import ConfigError
    from molgen.optimize import optimize

    predictor = predictors["activity"] if objective == "activity" else predictors["props"] if method == "gradient" else None
    options = dict(gradient_options) if method == "gradient" else {}
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = optimize(OBJECTIVES[objective], vae, method=method, budget=budget, start=lead, min_similarity=floor,
                          predictor=predictor, options=options, seed=0)  # fmt: skip
    except ConfigError as error:  # BO whose initial design held no molecule above the floor: a run that found nothing
        return {"calls": 0, "lead_score": None, "improvement": 0.0, "success": False, "counts": {}, "stop": "refused", "advice": str(error),
                "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - cpu0, 2),
                "radical_rule": True, "lead_alert_rule": True}  # fmt: skip
    oracle = result.oracle
    lead_score = float(oracle.objective.score([oracle.starts[0]]).values[0])
    better = [r.score - lead_score for r in oracle.top() if r.smiles != oracle.starts[0]]
    improvement = max(better) if better else 0.0
    return {"calls": oracle.calls, "lead_score": lead_score, "improvement": max(improvement, 0.0), "success": improvement > 0,
            "counts": dict(oracle.counts), "stop": (result.summary.get("stop") or {}).get("rule"), "advice": result.summary.get("advice"),
            "seconds": round(time.perf_counter() - t0, 2), "cpu_seconds": round(time.process_time() - cpu0, 2),
            "radical_rule": True,  # the sanity filter drops radicals (b3d53d6); 111 rows of docs/leadopt_grid_runs.jsonl ran before it (False)
            "lead_alert_rule": True,  # alerts the lead carries are allowed near it; rows without the key ran before (same result for a lead with no alert)
            **({"decode_cpu_s": result.summary["method_facts"]["decode_cpu_s"]} if method == "random" else {})}  # fmt: skip


def load_predictors(vae, out: Path, seed: int = 0) -> dict:
    from molgen.datasets import read_molecules
    from molgen.optimize import (
        PredictorTrainingConfig,
        load_predictor,
        save_predictor,
        train_label_predictor,
        train_property_predictor,
    )

    cfg = PredictorTrainingConfig(epochs=40, seed=seed)
    paths = {"props": out / "pred_props.safetensors", "activity": out / "pred_activity.safetensors"}
    if not paths["props"].exists():
        smiles = read_molecules(ZINC).smiles[:5000]
        save_predictor(paths["props"], train_property_predictor(vae, smiles, ["plogp", "qed"], cfg))
    if not paths["activity"].exists():
        smiles, activity = synthetic_assay(seed=seed)
        save_predictor(paths["activity"], train_label_predictor(vae, smiles, activity[:, None], ["activity"], cfg))
    return {k: load_predictor(p, latent_dim=vae.config.latent_dim) for k, p in paths.items()}


def _groups(rows: list[dict]):
    """``((objective, floor, method), rows of it)``, in table order."""
    keys = sorted({(r["objective"], r["floor"], r["method"]) for r in rows}, key=lambda k: (list(OBJECTIVES).index(k[0]), k[1], k[2]))
    for key in keys:
        yield key, [r for r in rows if (r["objective"], r["floor"], r["method"]) == key]


def summarise(rows: list[dict]) -> list[dict]:
    table = []
    for (objective, floor, method), sel in _groups(rows):
        spent = [r["calls"] / r["budget"] for r in sel]
        table.append({"objective": objective, "floor": floor, "method": method, "leads": len(sel),
                      "success": float(np.mean([r["success"] for r in sel])), "improvement": float(np.mean([r["improvement"] for r in sel])),
                      "distinct": float(np.mean([r["calls"] for r in sel])), "min_spent": float(min(spent)),
                      "spent_90": float(np.mean([s >= 0.9 for s in spent])), "cpu_s": float(np.mean([r["cpu_seconds"] for r in sel]))})  # fmt: skip
    return table


def charged(smiles: str) -> bool:
    """A formal charge in the SMILES (the constrained set's protonated amines). Near such a lead, writing
    the neutral amine (another protonation state of the same compound) raises pLogP by itself: Crippen
    logP rises and the SA score drops (+1.5 for ``COc1cc2c(cc1OC)CC([NH3+])C2``, +5.2 for a lead with two
    charged amines), whatever the method."""
    from rdkit import Chem

    return any(atom.GetFormalCharge() for atom in Chem.MolFromSmiles(smiles).GetAtoms())


def by_charge(rows: list[dict]) -> list[dict]:
    """Mean improvement per objective, floor and method, on leads with and without a formal charge."""
    out, is_charged = [], {lead: charged(lead) for lead in {r["lead"] for r in rows}}
    for (objective, floor, method), sel in _groups(rows):
        row = {"objective": objective, "floor": floor, "method": method}
        for name, want in (("charged", True), ("neutral", False)):
            part = [r["improvement"] for r in sel if is_charged[r["lead"]] == want]
            row[name] = {"leads": len(part), "improvement": float(np.mean(part)) if part else None}
        out.append(row)
    return out


def markdown(table: list[dict], meta: dict, charge_table: list[dict] | None = None) -> str:
    lines = [
        "# Lead optimization benchmark",
        "",
        f"Command: `{meta['command']}`  ",
        f"Machine: {meta['machine']['cpus']} CPUs ({meta['machine']['platform']}), shared (load average at the end "
        f"{meta['machine']['load_average']}); {meta['date']}. Leads: {meta['leads']}; budget {meta['budget']} oracle calls per run; "
        f"model {meta['model']}."
        + (f" {meta['runs_before_radical_rule']} of the runs ran before the sanity filter dropped radicals (b3d53d6); "
           "the rest with it." if meta.get("runs_before_radical_rule") else "")
        + (f" {meta['runs_with_lead_alert_rule']} runs ran after the sanity filter allowed a lead's own alerts near it (3db1675), "
           "among them every run of the leads that carry an alert (the only ones whose results the rule changes)."
           if meta.get("runs_with_lead_alert_rule") else ""),
        "",
        "| objective | floor | method | leads | success | mean improvement | distinct feasible molecules | leads with >= 90 % of budget spent | least budget spent | CPU s per run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(f"| {r['objective']} | {r['floor']} | {r['method']} | {r['leads']} | {r['success']:.0%} | {r['improvement']:.3f} | "
                     f"{r['distinct']:.0f} | {r['spent_90']:.0%} | {r['min_spent']:.0%} | {r['cpu_s']:.1f} |")  # fmt: skip
    if charge_table:
        def cell(part: dict) -> str:
            return "—" if part["improvement"] is None else f"{part['improvement']:.3f} ({part['leads']})"

        lines += ["", "Mean improvement on leads with a formal charge and without (leads in brackets). Near a charged lead, writing the "
                  "neutral amine (another protonation state of the same compound) raises pLogP by itself, whatever the method:", "",
                  "| objective | floor | method | charged leads | neutral leads |", "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {r['objective']} | {r['floor']} | {r['method']} | {cell(r['charged'])} | {cell(r['neutral'])} |" for r in charge_table]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "data" / "zinc_model.safetensors"))
    parser.add_argument("--zinc-leads", type=int, default=20)
    parser.add_argument("--druglike-leads", type=int, default=20)
    parser.add_argument("--objectives", nargs="+", default=list(OBJECTIVES), choices=list(OBJECTIVES))
    parser.add_argument("--floors", type=float, nargs="+", default=[0.4, 0.6])
    parser.add_argument("--methods", nargs="+", default=["gradient", "random", "bo"], choices=["gradient", "random", "bo"])
    parser.add_argument("--first", type=int, default=None, help="only the first N leads of the list (it alternates the two sets, so "
                        "--first 10 is 5 of each): a method too costly for all 40 runs on the same leads as the others")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--option", action="append", default=[], help="gradient option key=value (JSON value)")
    parser.add_argument("--out", default="runs/leadopt")
    parser.add_argument("--shard", default="0/1", help="i/n: run only every n-th lead starting at the i-th (run n processes, "
                        "one per shard, then --report); each shard writes <out>/results.<i>of<n>.jsonl")
    parser.add_argument("--report", action="store_true", help="only tabulate the finished runs of <out>/results.jsonl")
    parser.add_argument("--json", default=str(ROOT / "docs" / "leadopt_benchmarks.json"))
    parser.add_argument("--md", default=str(ROOT / "docs" / "leadopt_benchmarks.md"))
    args = parser.parse_args()

    import torch

    from molgen.optimize import register_method
    from molgen.vae import MoleculeVAE

    torch.set_num_threads(1)
    register_method("random", random_near_lead)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vae = MoleculeVAE.load(args.model, device="cpu")
    predictors = load_predictors(vae, out)
    gradient_options = dict(n_starts=64, steps=10, decode_every=2, explore_max_rounds=60)
    gradient_options.update({k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)})
    shard, shards = (int(x) for x in args.shard.split("/"))
    if not 0 <= shard < shards:
        parser.error(f"--shard {args.shard}: need i/n with 0 <= i < n")
    results = out / ("results.jsonl" if shards == 1 else f"results.{shard}of{shards}.jsonl")
    done = {}
    for part in sorted(out.glob("results*.jsonl")):
        done.update({json.dumps(r["key"]): r for r in map(json.loads, part.read_text().splitlines())})
    all_leads = leads(vae, args.zinc_leads, args.druglike_leads)[: args.first]
    # Shards split the leads not finished yet (so processes started together share the work evenly
    # whatever is done already); finished runs are never redone.
    def key_of(lead: str, objective: str, floor: float, method: str) -> list:
        return [lead, objective, floor, method, args.budget, gradient_options if method == "gradient" else {}]

    grid = list(itertools.product(args.objectives, args.floors, args.methods))
    unfinished = [i for i, (_, lead) in enumerate(all_leads) if any(json.dumps(key_of(lead, *g)) not in done for g in grid)]
    mine = set(unfinished[shard::shards])
    rows = []
    for index, (lead_set, lead) in enumerate(all_leads):
        for objective in args.objectives:
            for floor in args.floors:
                for method in args.methods:
                    key = key_of(lead, objective, floor, method)
                    row = done.get(json.dumps(key))
                    if row is None and (args.report or index not in mine):
                        continue
                    if row is None:
                        row = {"key": key, "set": lead_set, "lead": lead, "objective": objective, "floor": floor, "method": method,
                               "budget": args.budget, **run_one(vae, predictors, lead, objective, floor, method, args.budget, gradient_options)}  # fmt: skip
                        with results.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                        print(f"{lead_set} {objective} {floor} {method}: calls {row['calls']}, improvement {row['improvement']:.3f}, "
                              f"{row['cpu_seconds']} CPU s, {row['stop']}", flush=True)  # fmt: skip
                    rows.append(row)
    # Methods are compared on the same leads: a lead enters the table only with all its runs finished.
    per_lead = len(args.objectives) * len(args.floors) * len(args.methods)
    finished = {lead for lead in {r["lead"] for r in rows} if sum(r["lead"] == lead for r in rows) == per_lead}
    partial = len({r["lead"] for r in rows} - finished)
    rows = [r for r in rows if r["lead"] in finished]
    table, charge_table = summarise(rows), by_charge(rows)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    meta = {"command": "python scripts/bench_leadopt.py " + " ".join(os.sys.argv[1:]), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": [round(x, 1) for x in os.getloadavg()]},
            "leads": f"{sum(s == 'zinc800' for s, _ in all_leads)} from the constrained set + {sum(s == 'druglike' for s, _ in all_leads)} drug-like",
            "budget": args.budget, "model": Path(args.model).name, "gradient_options": gradient_options,
            "process_cpu_s": round(usage.ru_utime + usage.ru_stime, 1)}  # fmt: skip
    meta["runs_missing"] = len(all_leads) * per_lead - len(rows)
    meta["leads_left_out_unfinished"] = partial
    meta["runs_before_radical_rule"] = sum(r.get("radical_rule") is False for r in rows)
    meta["runs_with_lead_alert_rule"] = sum(bool(r.get("lead_alert_rule")) for r in rows)
    meta["leads"] = (f"{sum(s == 'zinc800' and lead in finished for s, lead in all_leads)} from the constrained set + "
                     f"{sum(s == 'druglike' and lead in finished for s, lead in all_leads)} drug-like, all runs finished"
                     + (f" ({partial} more with some runs unfinished left out)" if partial else ""))
    Path(args.json).write_text(json.dumps({"meta": meta, "table": table, "by_charge": charge_table, "runs": rows}, indent=1, default=str))
    Path(args.md).write_text(markdown(table, meta, charge_table))
    print(markdown(table, meta, charge_table))


if __name__ == "__main__":
    main()
