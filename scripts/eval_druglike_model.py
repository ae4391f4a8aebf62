"""Evaluate the 'drug-like' model against its own held-out ZINC split, beside the MOSES default model.

Draws ``--n`` prior samples (seed 0, the model's default temperature) and
reports, next to the same numbers for the training set:

* validity, uniqueness, novelty against its training split (exact isomeric
  canonical SMILES, so a stereoisomer of a training molecule counts as novel);
* stereo rate (molecules with a specified tetrahedral centre or E/Z bond after
  RDKit's stereo perception) and formal-charge rate, samples vs training set;
* the MOSES metrics FCD, SNN, Frag, Scaf, Filters, IntDiv against the
  10,000 held-out molecules (``scripts/train_druglike_model.py`` makes the split),
  beside the MOSES model's FCD/Test (``docs/default_model_metrics_test.json``).

Reproduce::

    python scripts/eval_druglike_model.py --model data/druglike_model.safetensors --split runs/druglike --n 5000

Writes ``docs/druglike_model.json`` and ``docs/druglike_model.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "data" / "druglike_model.safetensors"))
    parser.add_argument("--split", default="runs/druglike", help="prefix of the <split>_train.smi / <split>_test.smi files (made if missing)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rate-sample", type=int, default=20000, help="training molecules (seeded) for the stereo/charge rates")
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    args = parser.parse_args()

    from train_druglike_model import write_split

    from molgen.chem.standardization import stereo_charge_rates
    from molgen.metrics import compute_metrics
    from molgen.vae import MoleculeVAE

    start, cpu0 = time.perf_counter(), time.process_time()
    train_path, test_path = write_split(args.split)
    train, test = train_path.read_text().split(), test_path.read_text().split()
    vae = MoleculeVAE.load(args.model, device="cpu")
    samples = vae.sample(args.n, seed=0)
    metrics = compute_metrics(samples, reference=test, train=train, n_jobs=1)
    picked = np.random.default_rng(0).choice(len(train), min(args.rate_sample, len(train)), replace=False)
    train_rates = stereo_charge_rates([train[i] for i in picked])
    sample_rates = stereo_charge_rates(samples)
    moses = json.loads((ROOT / "docs" / "default_model_metrics_test.json").read_text())["metrics"]
    result = {
        "command": "python scripts/eval_druglike_model.py " + " ".join(sys.argv[1:]),
        "model": str(args.model),
        "machine": f"{platform.machine()}, shared 2-core box, torch threads 1",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n_samples": args.n,
        "temperature": vae.default_temperature,
        "prior": prior_summary(vae),
        "vocab_size": len(vae.vocab),
        "n_train": len(train),
        "n_test": len(test),
        "metrics": metrics,
        "sample_rates": sample_rates,
        "train_rates": train_rates,
        "relative_gap": {k: sample_rates[k] / train_rates[k] - 1 for k in ("stereo_rate", "charge_rate")},
        "moses_model": {k: moses[k] for k in ("valid", "unique@10000", "Novelty", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "Filters", "IntDiv")},
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu0 + resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime,
    }
    docs = Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "druglike_model.json").write_text(json.dumps(result, indent=2, default=float))
    (docs / "druglike_model.md").write_text(markdown(result))
    print(markdown(result))


def prior_summary(vae) -> str:
    """The latent prior samples are drawn from, in words."""
    prior = vae.latent_prior
    if prior is None:
        return "N(0, I)"
    if prior.info.get("kind") == "posterior":
        return f"aggregate posterior of {prior.components:,} training molecules (noise x{prior.info.get('noise', 1.0):g})"
    return f"{prior.components}-Gaussian mixture fitted to training codes"


def markdown(r: dict) -> str:
    m, moses = r["metrics"], r["moses_model"]
    keys = ["valid", "unique@1000", "Novelty", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "Filters", "IntDiv"]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "—"  # noqa: E731
    s, t = r["sample_rates"], r["train_rates"]
    return "\n".join([
        "# The 'drug-like' model (stereo- and charge-aware, ZINC-250k)",
        "",
        f"Command: `{r['command']}`  ",
        f"Model: `{r['model']}` ({r['vocab_size']} tokens); {r['n_samples']:,} prior samples, seed 0, temperature {r['temperature']}; prior: {r.get('prior', '—')}.  ",
        f"Machine: {r['machine']}; {r['date']}; {r['seconds'] / 60:.1f} min wall, {r['cpu_seconds'] / 60:.1f} CPU-min.",
        "",
        f"'/Test' here is the model's own held-out split ({r['n_test']:,} ZINC-250k molecules); for the MOSES model it is the MOSES test set. "
        "The two FCDs measure distance to different sets and are shown side by side, not ranked.",
        "",
        "| model | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        "| drug-like (ZINC held-out) | " + " | ".join(fmt(m.get(k)) for k in keys) + " |",
        "| MOSES default (MOSES test) | " + " | ".join(fmt(moses.get(k if k != "unique@1000" else "unique@10000")) for k in keys) + " |",
        "",
        "| | stereo rate | formal-charge rate |",
        "|---|---|---|",
        f"| samples ({s['n_valid']:,} valid) | {s['stereo_rate']:.3f} | {s['charge_rate']:.3f} |",
        f"| training set ({t['n_valid']:,}, seeded sample) | {t['stereo_rate']:.3f} | {t['charge_rate']:.3f} |",
        f"| relative gap | {r['relative_gap']['stereo_rate']:+.1%} | {r['relative_gap']['charge_rate']:+.1%} |",
        "",
    ])


if __name__ == "__main__":
    main()
