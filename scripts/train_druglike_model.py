"""Train the stereo- and charge-aware 'drug-like' SELFIES VAE (``data/druglike_model.safetensors``).

ZINC-250k is used as shipped (``data/zinc250k.smi.gz``: stereocentres, E/Z
bonds and formal charges kept), after the input standardisation policy of
:mod:`molgen.chem.standardization` (largest organic fragment, charges and stereo
kept). A seeded 10,000-molecule test split is held out (``<out>_test.smi``);
the model never sees it, and ``scripts/eval_druglike_model.py`` scores samples
against it.

The run fine-tunes ``data/zinc_model.safetensors`` (trained on the same
molecules without stereochemistry) with a vocabulary grown by the stereo
tokens (``molgen train --init-from``, :mod:`molgen.train.vocab_growth`): the
encoder and decoder already know the scaffolds, so the CPU budget goes into
learning where stereocentres and E/Z bonds sit. That beat training from
scratch in equal time on the fine-tuning task of ``docs/druglike_model.md``.

Reproduce (resumable with ``--resume``)::

    python scripts/train_druglike_model.py --out runs/druglike --minutes 60 --max-cpu-minutes 70
    molgen fit-prior --model runs/druglike --kind posterior --components 8192 --noise 1.4 \
        --data runs/druglike_train.smi -o runs/druglike/prior.safetensors
    molgen tune-sampling --model runs/druglike/prior.safetensors --validation runs/druglike_train.smi \
        --train runs/druglike_train.smi --temperatures 0.1,0.3,0.5,0.7 -o runs/druglike/tuned.safetensors
    cp runs/druglike/tuned.safetensors data/druglike_model.safetensors

The prior stores the encoder's Gaussians of 8,192 training molecules (an
aggregate-posterior prior; the model card says why not a Gaussian mixture);
the noise factor and temperature were chosen by FCD to training molecules at
novelty >= 0.9 (``docs/model_card.md``).

A longer run continues the shipped model (new optimizer state, same split)::

    python scripts/train_druglike_model.py --out runs/druglike2 --base data/druglike_model.safetensors --minutes 95 --max-cpu-minutes 100
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ZINC = ROOT / "data" / "zinc250k.smi.gz"
BASE = ROOT / "data" / "zinc_model.safetensors"
N_TEST = 10_000


def write_split(out: str, seed: int = 0) -> tuple[Path, Path]:
    """``<out>_train.smi`` and ``<out>_test.smi``: standardised ZINC-250k, a seeded test split held out."""
    sys.path.insert(0, str(ROOT))
    from molgen.chem.standardization import StandardizePolicy, standardize_smiles

    train_path, test_path = Path(out + "_train.smi"), Path(out + "_test.smi")
    if train_path.exists() and test_path.exists():
        return train_path, test_path
    with gzip.open(ZINC, "rt") as fh:
        raw = [line.split()[0] for line in fh if line.strip()]
    kept, report = standardize_smiles(raw, StandardizePolicy())
    print(report.summary(), flush=True)
    smiles = [s for s in kept if s is not None]
    order = np.random.default_rng(seed).permutation(len(smiles))
    test = set(order[:N_TEST].tolist())
    train_path.parent.mkdir(parents=True, exist_ok=True)
    train_path.write_text("".join(s + "\n" for i, s in enumerate(smiles) if i not in test))
    test_path.write_text("".join(smiles[i] + "\n" for i in sorted(test)))
    print(f"{len(smiles) - N_TEST:,} training / {N_TEST:,} test molecules -> {train_path}, {test_path}", flush=True)
    return train_path, test_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/druglike")
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--max-cpu-minutes", type=float, default=70)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--base", default=str(BASE), help="checkpoint to fine-tune (default: the stereo-free ZINC model; "
                        "data/druglike_model.safetensors continues the shipped model)")
    args = parser.parse_args()
    train_path, _ = write_split(args.out, args.seed)
    command = [
        sys.executable, "-m", "molgen.cli", "train", "--data", str(train_path), "--out", args.out, "--representation", "selfies",
        "--epochs", "50", "--batch-size", "128", "--lr", "0.001", "--latent-dim", "128", "--embed-dim", "64",
        "--encoder-hidden", "128", "--decoder-hidden", "256", "--decoder-layers", "2", "--beta", "0.1",
        "--kl-warmup", "0", "--word-dropout", "0.1", "--max-length", "120", "--val-fraction", "0.01",
        "--max-minutes", str(args.minutes), "--max-cpu-minutes", str(args.max_cpu_minutes), "--patience", "0",
        "--threads", "1", "--quiet", "--seed", str(args.seed),
    ] + (["--resume"] if args.resume else ["--init-from", args.base])
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
