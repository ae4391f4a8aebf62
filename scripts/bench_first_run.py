"""First-run costs, measured as a new user meets them (``bench_speed.py first-run``).

One run, back to back on the same machine:

1. ``molgen sample -n N`` as a whole process (start-up, model load, pool,
   writing), counted in distinct valid molecules per wall second; beside it
   the raw strings per second of the MOSES VAE's own ``VAE.sample`` at its
   default configuration (it always decodes 100 steps, so the rate does not
   depend on its weights and an untrained model gives the same figure);
2. MOSES ``get_all_metrics`` on those molecules (test and scaffold-test sets,
   the wheel's precomputed statistics, ``n_jobs`` workers);
3. ``molgen benchmark --generated X --reference moses-test --reference
   moses-test-scaffolds`` on an empty cache, then again with the cache warm;
4. gradient optimization of 10,000 starts x 10 Adam steps, decoded at every
   step and every new molecule scored for QED (``scripts/profile_gradient.py
   --no-profile``, in its own process; with ``--gradient-predictor``);
5. whether the wheel's ChemNet statistics are the ones molgen would compute:
   molgen's ChemNet activations beside ``fcd_torch``'s (the code that made the
   wheel's) on the first test molecules, and the FCD of the generated set from
   the wheel's statistics and from molgen's own (:func:`wheel_fcd_check`).

MOSES's ``get_all_metrics`` also computes Novelty, loading the 1.6M-molecule
training set unless given one; it gets a one-molecule training list here and
molgen no ``--train``, so neither pays for it.

CPU time (this process and its finished children) is reported beside wall time:
the machine is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOLGEN = [sys.executable, "-m", "molgen"]
SUFFIX_KEYS = ("FCD", "SNN", "Frag", "Scaf")


def _timed(cmd: list[str], env: dict | None = None) -> dict:
    from moses_reference import _cpu_seconds

    cpu0, start = _cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(_cpu_seconds() - cpu0, 2), "stderr": proc.stderr}


def sample_whole_process(n: int, out: Path) -> dict:
    """``molgen sample -n`` from a cold process; distinct valid molecules per wall second."""
    run = _timed([*MOLGEN, "sample", "-n", str(n), "-o", str(out)])
    lines = [line.strip() for line in out.read_text().splitlines() if line.strip()]
    unique = len(set(lines))
    return {
        "command": f"molgen sample -n {n} -o {out.name}",
        "written": len(lines),
        "valid_unique": unique,
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "valid_unique_per_s": round(unique / run["wall_s"], 1),
    }


def moses_vae_raw_rate(moses_vae, train: list[str], n: int, batch: int = 512) -> dict:
    """Raw strings per second of the MOSES VAE's ``sample`` (default config, untrained weights)."""
    import torch
    from moses_reference import _cpu_seconds

    torch.manual_seed(0)
    model = moses_vae.VAE(moses_vae.OneHotVocab.from_data(train), moses_vae.config).eval()
    cpu0, start = _cpu_seconds(), time.perf_counter()
    done = 0
    while done < n:
        done += len(model.sample(min(batch, n - done)))
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu0
    return {"strings": done, "batch": batch, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "strings_per_s": round(done / wall, 1)}


def moses_metrics(metrics_module, generated: list[str], n_jobs: int) -> dict:
    from moses_reference import _cpu_seconds

    cpu0, start = _cpu_seconds(), time.perf_counter()
    result = metrics_module.get_all_metrics(generated, n_jobs=n_jobs, train=[generated[0]])
    return {"wall_s": round(time.perf_counter() - start, 2), "cpu_s": round(_cpu_seconds() - cpu0, 2), "metrics": dict(result)}


def molgen_benchmark(generated: Path, cache: Path, out: Path, n_jobs: int) -> dict:
    env = dict(os.environ, MOLGEN_CACHE=str(cache))
    cmd = [*MOLGEN, "benchmark", "--generated", str(generated), "--reference", "moses-test",
           "--reference", "moses-test-scaffolds", "-o", str(out), "--n-jobs", str(n_jobs)]  # fmt: skip
    run = _timed(cmd, env)
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    progress = [line for line in run["stderr"].splitlines() if "mol/s" in line]
    return {"wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "metrics": metrics, "progress_lines": progress[-6:]}


def chemnet_check(moses_dir: Path, k: int) -> dict:
    """Largest difference between molgen's and fcd_torch's ChemNet activations on the first ``k`` test molecules."""
    import numpy as np
    from fcd_torch import FCD

    from molgen.metrics.fcd import chemnet_activations
    from molgen.metrics.reference import read_smiles_file

    smiles = read_smiles_file(moses_dir / "test.csv.gz")[:k]
    ours = chemnet_activations(smiles)
    theirs = FCD(device="cpu", n_jobs=1, batch_size=32).get_predictions(smiles)
    return {"molecules": k, "max_abs_diff": float(np.abs(ours - theirs).max()), "activation_scale": float(np.abs(theirs).max())}


def gradient_run(predictor: str, starts: int) -> dict:
    """``scripts/profile_gradient.py --no-profile`` as its own process: wall and CPU seconds (main + workers), its digest."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "profile_gradient.py"), "--predictor", predictor,
                           "--n-starts", str(starts), "--no-profile"], capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"profile_gradient.py failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout[proc.stdout.index("{") :])
    return {k: result[k] for k in ("starts", "steps", "decoded", "scored", "wall_s", "cpu_s", "children_cpu_s", "total_cpu_s", "digest", "vector")}


def compare(moses: dict, molgen: dict) -> dict:
    """Largest |molgen - MOSES| over the metrics both report."""
    diffs = {k: abs(molgen[k] - v) for k, v in moses.items() if isinstance(molgen.get(k), (int, float)) and isinstance(v, (int, float))}
    worst = max(diffs, key=diffs.get)
    return {"keys": len(diffs), "max_abs_diff": diffs[worst], "worst_key": worst, "within_1e-3": sum(d <= 1e-3 for d in diffs.values())}


def first_run(args) -> dict:
    """Everything in the module docstring, in that order; returns the JSON entry."""
    from bench_speed import _machine, _moses_train_smiles, import_moses_vae
    from moses_reference import import_moses

    moses_dir = Path(os.environ.get("MOLGEN_CACHE", Path.home() / ".cache" / "molgen")) / "moses"
    work = Path(tempfile.mkdtemp(prefix="molgen-first-run-"))
    samples = work / "samples.smi"
    entry: dict = {"machine": _machine(), "n_jobs": args.n_jobs}
    entry["molgen_sample"] = sample_whole_process(args.n_sample, samples)
    moses_vae = import_moses_vae(args.moses_root, args.extra)
    entry["moses_vae_sample"] = moses_vae_raw_rate(moses_vae, _moses_train_smiles()[:50_000], args.n_moses)
    entry["sample_ratio"] = round(entry["molgen_sample"]["valid_unique_per_s"] / entry["moses_vae_sample"]["strings_per_s"], 1)
    generated = work / "generated.smi"
    generated.write_text("\n".join(samples.read_text().splitlines()[: args.n_benchmark]) + "\n")
    entry["generated"] = {"molecules": args.n_benchmark, "source": "the first lines of the molgen sample above"}
    moses = moses_metrics(import_moses(args.moses_root, args.extra), generated.read_text().split(), args.n_jobs)
    cache = work / "cache"
    cache.mkdir()
    (cache / "moses").symlink_to(moses_dir)
    cold = molgen_benchmark(generated, cache, work / "report-cold", args.n_jobs)
    warm = molgen_benchmark(generated, cache, work / "report-warm", args.n_jobs)
    entry.update(moses_get_all_metrics={k: v for k, v in moses.items() if k != "metrics"}, molgen_cold={k: v for k, v in cold.items() if k != "metrics"},
                 molgen_warm={k: v for k, v in warm.items() if k != "metrics"})  # fmt: skip
    entry["cold_vs_moses"] = round(cold["wall_s"] / moses["wall_s"], 3)
    entry["warm_vs_moses"] = round(warm["wall_s"] / moses["wall_s"], 3)
    entry["agreement"] = compare(moses["metrics"], cold["metrics"])
    entry["metrics"] = {"moses": moses["metrics"], "molgen": {k: cold["metrics"][k] for k in moses["metrics"] if k in cold["metrics"]}}
    if args.gradient_predictor:
        entry["gradient"] = gradient_run(args.gradient_predictor, args.gradient_starts)
    entry["chemnet_check"] = chemnet_check(moses_dir, args.chemnet_molecules)
    entry["fcd_check"] = wheel_fcd_check(generated, moses_dir, args.n_jobs)
    return entry


def markdown(entry: dict) -> str:
    s, m = entry["molgen_sample"], entry["moses_vae_sample"]
    rows = [
        ("`molgen sample -n %d`, whole process" % s["written"], s["wall_s"], s["cpu_s"], f"{s['valid_unique_per_s']:,.0f} distinct valid mol/s"),
        (f"MOSES VAE `sample`, {m['strings']:,} strings (batch {m['batch']})", m["wall_s"], m["cpu_s"], f"{m['strings_per_s']:,.0f} raw strings/s"),
        ("MOSES `get_all_metrics` (test + scaffold test)", entry["moses_get_all_metrics"]["wall_s"], entry["moses_get_all_metrics"]["cpu_s"], "1.00x"),
        ("`molgen benchmark`, empty cache", entry["molgen_cold"]["wall_s"], entry["molgen_cold"]["cpu_s"], f"{entry['cold_vs_moses']:.2f}x MOSES"),
        ("`molgen benchmark`, warm cache", entry["molgen_warm"]["wall_s"], entry["molgen_warm"]["cpu_s"], f"{entry['warm_vs_moses']:.2f}x MOSES"),
    ]
    if "gradient" in entry:
        g = entry["gradient"]
        rows.append((f"gradient optimization, {g['starts']:,} starts x {g['steps']} steps, decoded every step ({g['decoded']:,} decodes, "
                     f"{g['scored']:,} scored)", g["wall_s"], g["total_cpu_s"], "bar: 60 s wall"))  # fmt: skip
    agreement = entry["agreement"]
    units = f", CPU units {entry['gradient']['vector']}" if "gradient" in entry else ""
    lines = [
        f"First run ({entry['machine']['date']}, {entry['machine']['cpus']} CPUs shared{units}, load average {entry['machine']['load_average']}; "
        f"scoring {entry['generated']['molecules']:,} molecules, n_jobs {entry['n_jobs']}; command `{entry.get('command', '')}`):",
        "",
        "| step | wall s | CPU s | rate / ratio |",
        "|---|---|---|---|",
        *[f"| {name} | {wall:.1f} | {cpu:.1f} | {rate} |" for name, wall, cpu, rate in rows],
        "",
        f"Sampling: {entry['sample_ratio']}x the MOSES VAE's raw string rate (bar: 20x). "
        f"Benchmark values: {agreement['within_1e-3']} of {agreement['keys']} metrics within 1e-3 of MOSES "
        f"(largest difference {agreement['max_abs_diff']:.2g}, {agreement['worst_key']}).",
    ]
    check = entry["chemnet_check"]
    lines.append(
        f"ChemNet: molgen's activations differ from fcd_torch's (which made the wheel's statistics) by at most "
        f"{check['max_abs_diff']:.1e} (activations up to {check['activation_scale']:.2f}) on the first {check['molecules']} test molecules."
    )
    for split, check in entry.get("fcd_check", {}).items():
        lines.append(
            f"FCD of the scored set against {split}: {check['fcd_wheel_stats']:.6f} from the wheel's ChemNet statistics, "
            f"{check['fcd_molgen_stats']:.6f} from molgen's own (difference {check['difference']:.1e}; the two differ only in the "
            f"{check['canonical_smiles_changed']} of {check['molecules']:,} molecules whose canonical SMILES the installed RDKit writes differently)."
        )
    return "\n".join(lines) + "\n"


def wheel_fcd_check(generated: Path, moses_dir: Path, n_jobs: int = 2) -> dict:
    """FCD of ``generated`` from the wheel's ChemNet statistics and from the ones molgen computes.

    A full ChemNet pass over a test set takes CPU-hours on a shared 2-core
    machine. It is not needed: molgen's activations equal fcd_torch's
    (:func:`chemnet_check`), so molgen's statistics differ from the wheel's
    only in the molecules whose canonical SMILES (ChemNet's input) the
    installed RDKit writes differently from the 2019 one. Their rows are
    swapped in the wheel's moments exactly (mean, and the unbiased covariance
    through its scatter matrix), which gives molgen's own statistics without
    the pass.
    """
    import numpy as np

    from molgen.chem._pool import pmap
    from molgen.metrics import _features
    from molgen.metrics.fcd import (
        chemnet_activations,
        chemnet_statistics,
        frechet_distance,
    )
    from molgen.metrics.moses_stats import read_moses_stats
    from molgen.metrics.reference import read_smiles_file

    canonical = [c.smiles for c in pmap(_features.canonicalize, read_smiles_file(generated), n_jobs=n_jobs) if c.smiles]
    gen_mu, gen_sigma = chemnet_statistics(canonical)
    out = {}
    for split in ("test", "test_scaffolds"):
        smiles = read_smiles_file(moses_dir / f"{split}.csv.gz")
        ours = [c.smiles for c in pmap(_features.canonicalize, smiles, n_jobs=n_jobs)]
        changed = [i for i, (a, b) in enumerate(zip(smiles, ours, strict=True)) if a != b]
        wheel = read_moses_stats(moses_dir / f"{split}_stats.npz")
        n, mu = len(smiles), wheel.fcd_mu.astype(np.float64)
        old = chemnet_activations([smiles[i] for i in changed]).astype(np.float64)
        new = chemnet_activations([ours[i] for i in changed]).astype(np.float64)
        second = wheel.fcd_sigma * (n - 1) + n * np.outer(mu, mu) + new.T @ new - old.T @ old  # sum of x x^T
        mu_own = mu + (new - old).sum(0) / n
        sigma_own = (second - n * np.outer(mu_own, mu_own)) / (n - 1)
        from_wheel = frechet_distance(gen_mu, gen_sigma, mu, wheel.fcd_sigma)
        from_own = frechet_distance(gen_mu, gen_sigma, mu_own, sigma_own)
        out[split] = {"molecules": n, "canonical_smiles_changed": len(changed), "fcd_wheel_stats": from_wheel,
                      "fcd_molgen_stats": from_own, "difference": from_wheel - from_own}  # fmt: skip
    return out
