"""Fine-tuning on a user's stereo/charged chemotype: vocabulary growth vs training from scratch.

The "user" set is one chemotype of ZINC-250k, N-acyl pyrrolidines
(SMARTS ``O=CN1CCCC1``, the proline-amide motif of many protease and DPP-4
inhibitors), as written in ZINC: most carry stereocentres and about a quarter a
formal charge. 3,000 of them (seeded) are split 2,700 to fine-tune on and 300
held out.

Three models are compared on the held-out 300 and on 1,000 prior samples:

* ``before``: ``data/zinc_model.safetensors`` (pretrained on ZINC without
  stereochemistry; it cannot spell the stereo tokens at all);
* ``fine-tuned``: ``molgen train --init-from data/zinc_model.safetensors``,
  whose vocabulary grows by the data's new tokens (nothing is dropped);
* ``scratch``: the same architecture, data and options from random weights.

Both trainings get the same CPU-time budget (``--cpu-minutes``) and run side
by side, so they see the same machine load.

Reproduce::

    python scripts/bench_finetune_vocab.py --out runs/finetune --cpu-minutes 5

Writes ``docs/finetune_vocab.json`` and ``docs/finetune_vocab.md``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ZINC = ROOT / "data" / "zinc250k.smi.gz"
BASE = ROOT / "data" / "zinc_model.safetensors"
CHEMOTYPE = "O=CN1CCCC1"
ARCH = ["--latent-dim", "128", "--embed-dim", "64", "--encoder-hidden", "128", "--decoder-hidden", "256", "--decoder-layers", "2"]


def prepare(out: Path, n_train: int, n_test: int, seed: int) -> tuple[Path, Path]:
    """The chemotype's molecules from ZINC-250k, standardised, shuffled and split."""
    from rdkit import Chem, RDLogger

    from molgen.chem.standardization import standardize_smiles

    train_path, test_path = out / "user_train.smi", out / "user_test.smi"
    if train_path.exists() and test_path.exists():
        return train_path, test_path
    RDLogger.DisableLog("rdApp.*")
    pattern = Chem.MolFromSmarts(CHEMOTYPE)
    with gzip.open(ZINC, "rt") as fh:
        raw = [line.split()[0] for line in fh if line.strip()]
    order = np.random.default_rng(seed).permutation(len(raw))
    picked: list[str] = []
    for i in order:
        mol = Chem.MolFromSmiles(raw[i])
        if mol is not None and mol.HasSubstructMatch(pattern):
            picked.append(raw[i])
            if len(picked) == n_train + n_test:
                break
    smiles, report = standardize_smiles(picked, n_jobs=1)
    print(report.summary(), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    train_path.write_text("".join(s + "\n" for s in smiles[:n_train]))
    test_path.write_text("".join(s + "\n" for s in smiles[n_train:]))
    return train_path, test_path


def train_both(out: Path, data: Path, cpu_minutes: float, wall_minutes: float) -> None:
    """The fine-tune and the from-scratch run, side by side under the same CPU budget."""
    common = [
        "--data", str(data), "--representation", "selfies", "--epochs", "1000", "--batch-size", "64", "--lr", "0.001",
        *ARCH, "--beta", "0.1", "--kl-warmup", "0", "--word-dropout", "0.1", "--max-length", "120", "--val-fraction", "0.05",
        "--max-minutes", str(wall_minutes), "--max-cpu-minutes", str(cpu_minutes), "--patience", "0", "--threads", "1",
        "--quiet", "--seed", "0", "--checkpoint-every", "100",
    ]  # fmt: skip
    procs = []
    for name, extra in (("finetuned", ["--init-from", str(BASE)]), ("scratch", [])):
        if (out / name / "model.safetensors").exists():
            continue
        cmd = [sys.executable, "-m", "molgen.cli", "train", "--out", str(out / name), *common, *extra]
        print(" ".join(cmd), flush=True)
        log = open(out / f"{name}.log", "w")
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"training failed; see the logs in {out}")


def evaluate_model(path: Path, user_train: list[str], user_test: list[str], n_samples: int) -> dict:
    """Representability, reconstruction of the held-out molecules and sample statistics of one model."""
    from rdkit import Chem

    from molgen.chem.standardization import stereo_charge_rates
    from molgen.metrics import compute_metrics
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(path, device="cpu")
    kept_train = vae.tokenize(user_train)[2]
    recon = vae.reconstruct(user_test)
    samples = vae.sample(n_samples, seed=0)
    valid = [s for s in samples if s]
    pattern = Chem.MolFromSmarts(CHEMOTYPE)
    chemotype = np.mean([Chem.MolFromSmiles(s).HasSubstructMatch(pattern) for s in valid]) if valid else float("nan")
    metrics = compute_metrics(samples, reference=user_test, train=user_train, n_jobs=1, intdiv_exact_max=None)
    rates = stereo_charge_rates(samples)
    return {
        "vocab_size": len(vae.vocab),
        "user_train_representable": len(kept_train) / len(user_train),
        "recon_test": sum(a == b for a, b in zip(recon.inputs, recon.outputs)) / len(user_test),
        "valid": metrics["valid"],
        "unique": metrics.get("unique@1000", float("nan")),
        "novelty": metrics.get("Novelty", float("nan")),
        "stereo_rate": rates["stereo_rate"],
        "charge_rate": rates["charge_rate"],
        "chemotype_rate": float(chemotype),
        **{k: metrics[k] for k in ("FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test") if k in metrics},
    }


def run_facts(out: Path, name: str) -> dict:
    config = json.loads((out / name / "config.json").read_text())
    rows = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = rows[-1] if rows else {}
    return {
        "steps": last.get("step"),
        "skipped": config["data"].get("skipped"),
        "n_train": config["data"].get("n_train"),
        "vocab_added": len(config["data"].get("vocab_added", [])),
    }


def markdown(result: dict) -> str:
    cols = ["user_train_representable", "recon_test", "valid", "unique", "novelty", "stereo_rate", "charge_rate", "chemotype_rate",
            "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test"]  # fmt: skip
    lines = [
        "# Fine-tuning on a user's stereo/charged chemotype",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {result['machine']}; date {result['date']}. Both trainings ran side by side, each limited to "
        f"{result['cpu_minutes']} CPU-minutes or {result.get('wall_minutes', '?')} wall-minutes, whichever came first "
        "(steps below: equal budgets gave equal steps).",
        "",
        f"Data: {result['n_train']} + {result['n_test']} ZINC-250k molecules with `{CHEMOTYPE}` (N-acyl pyrrolidine); "
        f"stereo rate {result['data_rates']['stereo_rate']:.3f}, charge rate {result['data_rates']['charge_rate']:.3f} "
        "(training part). Sample metrics: 1,000 prior samples at temperature 1; FCD/SNN/Frag/Scaf against the 300 held-out molecules "
        "(so FCD is noisy), novelty against the 2,700 training ones. `recon_test`: exact (isomeric) greedy reconstruction of the 300 held-out.",
        "",
        "| model | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in result["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row.get(c, float('nan')):.3f}" for c in cols) + " |")
    lines += ["", "Runs: " + "; ".join(f"{k}: {v}" for k, v in result["runs"].items()), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/finetune")
    parser.add_argument("--cpu-minutes", type=float, default=5)
    parser.add_argument("--wall-minutes", type=float, default=45)
    parser.add_argument("--n-train", type=int, default=2700)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    args = parser.parse_args()
    out = Path(args.out)
    started, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    train_path, test_path = prepare(out, args.n_train, args.n_test, args.seed)
    train_both(out, train_path, args.cpu_minutes, args.wall_minutes)
    from molgen.chem.standardization import stereo_charge_rates

    user_train, user_test = train_path.read_text().split(), test_path.read_text().split()
    models = {"before (zinc_model)": BASE, "fine-tuned": out / "finetuned" / "model.safetensors", "scratch": out / "scratch" / "model.safetensors"}
    result = {
        "command": "python scripts/bench_finetune_vocab.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, shared 2-core box",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_minutes": args.cpu_minutes,
        "wall_minutes": args.wall_minutes,
        "n_train": len(user_train),
        "n_test": len(user_test),
        "data_rates": stereo_charge_rates(user_train),
        "models": {name: evaluate_model(path, user_train, user_test, args.samples) for name, path in models.items()},
        "runs": {name: run_facts(out, name) for name in ("finetuned", "scratch")},
        "wall_seconds": time.perf_counter() - started,
        "child_cpu_seconds": resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - cpu0.ru_utime,
    }
    docs = Path(args.docs)
    (docs / "finetune_vocab.json").write_text(json.dumps(result, indent=2, default=float))
    (docs / "finetune_vocab.md").write_text(markdown(result))
    print(markdown(result))


def rewrite_markdown(docs: Path) -> None:
    """Re-render the Markdown table from the stored JSON (no models needed)."""
    (docs / "finetune_vocab.md").write_text(markdown(json.loads((docs / "finetune_vocab.json").read_text())))


if __name__ == "__main__":
    main()
