"""Where the time of gradient optimization goes: N starts x 10 Adam steps, decoded at every step and scored.

    python scripts/profile_gradient.py --predictor runs/pred_default --n-starts 2000 --out docs/gradient_profile.json
    python scripts/profile_gradient.py --predictor runs/pred_default --n-starts 10000 --no-profile --label after \
        --out docs/gradient_profile.json --append

Prints wall and CPU seconds (this process and its worker processes: the
machine is shared, so wall time alone says little) and, under the profiler,
the cumulative time of the stages that matter, and writes them as JSON (with
``--append``, one entry per ``--label`` in ``runs``) and the runs as a
Markdown table next to it. The profiler sees this process only, so profiled
runs put the chemistry in it too (``--n-jobs 1``); ``--no-profile`` runs as
``molgen optimize`` does (workers beside the ascent). The 10,000 x 10 bar of
issue 28 is ``--n-starts 10000 --no-profile``. ``digest`` hashes the oracle's
calls (SMILES, score, step, call number): equal digests, same results.

To time another version of the package with this script (before/after, back
to back), put that version first on ``PYTHONPATH``; ``--n-jobs`` is only
passed when given, so versions without the option run too.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import platform
import pstats
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

STAGES = {
    "total": "gradient.py:optimize_gradient",
    "model decode (tokens)": ("decode_pipeline.py:_model_texts", "decoding.py:decode_tokens", "generate.py:decode_tokens"),
    "SELFIES -> SMILES": ("strings.py:_selfies_to_smiles", "bundle.py:_selfies_to_smiles", "vae.py:_selfies_to_smiles"),
    "canonical SMILES": "molecules.py:canonical_smiles",
    "oracle (bookkeeping + objective)": "oracle.py:__call__",
    "RDKit properties": ("properties.py:property_values", "properties.py:compute_properties"),
    "QED": "properties.py:qed",
    "SA score": "properties.py:sa_score",
    "ascent (predictor forward + backward)": "explore.py:ascent_step",
}


def _stage_seconds(stats: dict, keys: str | tuple[str, ...]) -> float:
    """Cumulative seconds of the first of ``keys`` the profile has (``file:function``)."""
    for key in (keys,) if isinstance(keys, str) else keys:
        file, name = key.split(":")
        total = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name)
        if total:
            return round(total, 2)
    return 0.0


def _run(args: argparse.Namespace) -> dict:
    import torch

    from molgen.optimize import (
        GradientConfig,
        Oracle,
        load_predictor,
        optimize_gradient,
    )
    from molgen.vae import MoleculeVAE

    torch.set_num_threads(1)
    vae = MoleculeVAE.load(args.model, device="cpu")
    predictor = load_predictor(args.predictor, latent_dim=vae.config.latent_dim)
    oracle = Oracle("qed")
    extra = {"n_jobs": args.n_jobs} if args.n_jobs is not None and "n_jobs" in GradientConfig.__dataclass_fields__ else {}
    cfg = GradientConfig(n_starts=args.n_starts, steps=args.steps, decode_every=1, batch_size=2048, **extra)
    profile = None if args.no_profile else cProfile.Profile()
    t0, c0 = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    run = optimize_gradient(vae, oracle, predictor, cfg, seed=0)
    if profile is not None:
        profile.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = children.ru_utime + children.ru_stime
    digest = hashlib.sha256("".join(f"{r.smiles},{r.score!r},{r.step},{r.call}\n" for r in oracle.history).encode()).hexdigest()[:16]
    result = {"label": args.label, "starts": args.n_starts, "steps": args.steps, "decoded": run.decoded, "scored": oracle.calls,
              "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "children_cpu_s": round(child_cpu, 1),
              "total_cpu_s": round(cpu + child_cpu, 1), "profiled": profile is not None, "digest": digest}  # fmt: skip
    if profile is not None:
        stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
        result["profiled_s (cumulative, profiler on)"] = {label: _stage_seconds(stats, key) for label, key in STAGES.items()}
    result.update(load_average=[round(x, 1) for x in os.getloadavg()], cpus=os.cpu_count(), cpu=platform.processor() or platform.machine(), vector=_vector_units(),
                  date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))  # fmt: skip
    return result


def _vector_units() -> str:
    """The CPU's widest float units (AVX-512 doubles fp32 GEMM over AVX2; AVX512-BF16/AMX enable bf16 decoding)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    except (OSError, IndexError):
        return "unknown"
    names = [n for n in ("avx512f", "avx512_bf16", "amx_bf16") if n in flags]
    return "+".join(names) if names else ("avx2" if "avx2" in flags else "other")


def _markdown(runs: list[dict], command: str) -> str:
    lines = ["# Gradient optimization throughput (issue 28)", "",
             f"`{command}` (one line per `--label`; `scripts/profile_gradient.py` explains the columns).", "",
             f"Machine: {runs[-1]['cpus']} CPUs ({runs[-1]['cpu']}), shared with other jobs (load average in the table); torch on one thread. "
             "Runs without a recorded 'CPU units' ran on the AVX-512 box (AVX512-BF16) of sessions before 2026-12-06 18:00.", "",
             "| run | starts x steps | decodes | scored | wall s | CPU s (main + workers) | load average | CPU units | digest | date |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in runs:
        cpu = f"{r['total_cpu_s']} ({r['cpu_s']} + {r['children_cpu_s']})"
        load = "/".join(str(x) for x in r["load_average"])
        lines.append(f"| {r['label']}{' (profiled)' if r['profiled'] else ''} | {r['starts']:,} x {r['steps']} | {r['decoded']:,} | "
                     f"{r['scored']:,} | {r['wall_s']} | {cpu} | {load} | {r.get('vector', 'avx512f+avx512_bf16')} | `{r['digest']}` | {r['date']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--predictor", required=True, help="a predictor of qed on this model (molgen predictor train --properties qed)")
    parser.add_argument("--n-starts", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=None, help="GradientConfig.n_jobs (default: 1 when profiling, else automatic)")
    parser.add_argument("--no-profile", action="store_true", help="time without the profiler (the bar's figure)")
    parser.add_argument("--label", default="run")
    parser.add_argument("--out", default=None, help="JSON file; a Markdown table is written next to it (.md)")
    parser.add_argument("--append", action="store_true", help="keep the other labels' runs already in --out")
    args = parser.parse_args()
    if args.n_jobs is None and not args.no_profile:
        args.n_jobs = 1
    result = _run(args)
    print(json.dumps(result, indent=1))
    if args.out:
        out = Path(args.out)
        old = json.loads(out.read_text()) if args.append and out.exists() else {}
        runs = [r for r in old.get("runs", []) if r.get("label") != args.label] + [result]
        command = "python scripts/profile_gradient.py --predictor runs/pred_default --n-starts N [--no-profile] --label L --out " + args.out
        out.write_text(json.dumps({"command": command, "runs": runs}, indent=1))
        out.with_suffix(".md").write_text(_markdown(runs, command))


if __name__ == "__main__":
    main()
