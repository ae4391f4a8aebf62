"""Where the time of gradient optimization goes: N starts x 10 Adam steps, decoded at every step and scored.

    python scripts/profile_gradient.py --predictor runs/b/pred_default --n-starts 1000 --out docs/gradient_profile.json

Prints wall and CPU seconds (this process and its children: the machine is
shared, so wall time alone says little) and the cumulative time of the stages
that matter (decoding, SELFIES -> SMILES, RDKit properties, QED, SA, the
predictor), and writes them as JSON. The 10,000 x 10 bar of issue 28 is
``--n-starts 10000``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import resource
import time
from datetime import datetime, timezone
from pathlib import Path

STAGES = {
    "total": "gradient.py:optimize_gradient",
    "decode (model + strings -> SMILES)": "vae.py:decode",
    "SELFIES -> SMILES": "vae.py:_selfies_to_smiles",
    "oracle (properties + objective)": "oracle.py:__call__",
    "RDKit properties (all 13)": "properties.py:compute_properties",
    "QED": "properties.py:qed",
    "SA score (computed per property that uses it)": "properties.py:sa_score",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--predictor", required=True, help="a predictor of qed on this model (molgen predictor train --properties qed)")
    parser.add_argument("--n-starts", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

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
    cfg = GradientConfig(n_starts=args.n_starts, steps=args.steps, decode_every=1, batch_size=2048)
    t0, c0 = time.perf_counter(), time.process_time()
    profile = cProfile.Profile()
    profile.enable()
    run = optimize_gradient(vae, oracle, predictor, cfg, seed=0)
    profile.disable()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    stats = pstats.Stats(profile).stats  # {(file, line, name): (cc, nc, tt, ct, callers)}
    stages = {}
    for label, key in STAGES.items():
        file, name = key.split(":")
        stages[label] = round(sum(v[3] for (f, _, n), v in stats.items() if f.endswith(file) and n == name), 2)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {"starts": args.n_starts, "steps": args.steps, "decoded": run.decoded, "scored": oracle.calls, "wall_s": round(wall, 1),
              "cpu_s": round(cpu, 1), "children_cpu_s": round(children.ru_utime + children.ru_stime, 1),
              "profiled_s (cumulative, profiler on)": stages, "load_average": [round(x, 1) for x in os.getloadavg()],
              "cpus": os.cpu_count(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}  # fmt: skip
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
