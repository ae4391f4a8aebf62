"""Train the ZINC-250k SELFIES VAE used by the ZINC-based optimization benchmarks.

The literature's latent-optimization tables (JT-VAE, GCPN, MolDQN, LIMO) use
models trained on ZINC-250k, and the constrained-optimization test molecules
come from ZINC, so their rows compare like with like only on a ZINC model.

Stereochemistry is removed first (``isomericSmiles=False``): none of the
benchmark scores (penalized logP, QED, Morgan-fingerprint similarity) depends
on it, and it doubles the SELFIES vocabulary (111 tokens with stereo and
cis/trans bonds, 56 without), which a short CPU training cannot
afford. Charges stay, so every test molecule is representable.

Reproduce::

    python scripts/train_zinc_model.py --out runs/zinc --minutes 25
    cp runs/zinc/model.safetensors data/zinc_model.safetensors      # if shipped

The architecture is the default model's (GRU, latent 128, decoder 256 x 2),
so the file stays about 4 MB.
"""

from __future__ import annotations

import argparse
import gzip
import subprocess
import sys
from pathlib import Path

from rdkit import Chem, RDLogger

ROOT = Path(__file__).resolve().parents[1]
ZINC = ROOT / "data" / "zinc250k.smi.gz"


def strip_stereo(source: Path, target: Path) -> int:
    """Write ``source``'s molecules without stereochemistry, one per line; returns the count."""
    RDLogger.DisableLog("rdApp.*")
    n = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(source, "rt") as fin, open(target, "w") as fout:
        for line in fin:
            mol = Chem.MolFromSmiles(line.split()[0]) if line.strip() else None
            if mol is not None:
                fout.write(Chem.MolToSmiles(mol, isomericSmiles=False) + "\n")
                n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/zinc")
    parser.add_argument("--minutes", type=float, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    data = Path(args.out + "_nostereo.smi")
    if not data.exists():
        print(f"{strip_stereo(ZINC, data)} molecules -> {data}")
    command = [
        sys.executable, "-m", "molgen.cli", "train", "--data", str(data), "--out", args.out, "--representation", "selfies",
        "--epochs", "50", "--batch-size", "128", "--lr", "0.001", "--latent-dim", "128", "--embed-dim", "64",
        "--encoder-hidden", "128", "--decoder-hidden", "256", "--decoder-layers", "2", "--beta", "0.5",
        "--kl-warmup", "2000", "--word-dropout", "0.1", "--max-length", "120", "--val-fraction", "0.01",
        "--max-minutes", str(args.minutes), "--patience", "0", "--threads", "1", "--quiet", "--seed", str(args.seed),
    ] + (["--resume"] if args.resume else [])
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
