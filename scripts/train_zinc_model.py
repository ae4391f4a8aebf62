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
    # continued with a lower KL weight, for reconstruction (the shipped model):
    python scripts/train_zinc_model.py --out runs/zinc_b01 --data runs/zinc_nostereo.smi --init-from runs/zinc/model.safetensors \
        --beta 0.1 --kl-warmup 0 --max-cpu-minutes 55 --minutes 70
    cp runs/zinc_b01/model.safetensors data/zinc_model.safetensors

``--resume`` continues a run with the settings it was started with; a new
KL weight needs a new run that starts from the old weights (``--init-from``).

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
    parser.add_argument("--max-cpu-minutes", type=float, default=0, help="stop after this many CPU-minutes (0: no limit)")
    parser.add_argument("--beta", type=float, default=0.5, help="final KL weight")
    parser.add_argument("--kl-warmup", type=int, default=2000, help="KL ramp steps (0 when continuing with --init-from)")
    parser.add_argument("--init-from", default=None, help="start from this model's weights (a new run; --resume keeps the old config)")
    parser.add_argument("--data", default=None, help="stereo-free SMILES (default: <out>_nostereo.smi, written if missing)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    data = Path(args.data or args.out + "_nostereo.smi")
    if not data.exists():
        print(f"{strip_stereo(ZINC, data)} molecules -> {data}")
    command = [
        sys.executable, "-m", "molgen.cli", "train", "--data", str(data), "--out", args.out, "--representation", "selfies",
        "--epochs", "50", "--batch-size", "128", "--lr", "0.001", "--latent-dim", "128", "--embed-dim", "64",
        "--encoder-hidden", "128", "--decoder-hidden", "256", "--decoder-layers", "2", "--beta", str(args.beta),
        "--kl-warmup", str(args.kl_warmup), "--word-dropout", "0.1", "--max-length", "120", "--val-fraction", "0.01",
        "--max-minutes", str(args.minutes), "--max-cpu-minutes", str(args.max_cpu_minutes), "--patience", "0", "--threads", "1", "--quiet", "--seed", str(args.seed),
    ] + (["--resume"] if args.resume else []) + (["--init-from", args.init_from] if args.init_from else [])
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
