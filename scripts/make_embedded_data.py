"""Build the small MOSES samples shipped in ``data/``.

MOSES (Polykovskiy et al., "Molecular Sets (MOSES): A Benchmarking Platform
for Molecular Generation Models", Front. Pharmacol. 2020; MIT licence) splits
ZINC Clean Leads into train (1,584,663), test (176,074) and scaffold-test
(176,226) molecules. This script draws uniform random samples without
replacement, with a fixed seed, and writes them one SMILES per line, gzipped
with a zero timestamp so that re-running it reproduces the files byte for byte.

Usage::

    python scripts/make_embedded_data.py \
        --source /path/to/moses/dataset/data --out data

``--source`` is the ``moses/dataset/data`` folder of the ``molsets`` 0.3.1
wheel (``molgen data moses`` caches the same files).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

import numpy as np

# (source file, output file, sample size)
SAMPLES = (
    ("train.csv.gz", "moses_train_50k.smi.gz", 50_000),
    ("test.csv.gz", "moses_test_5k.smi.gz", 5_000),
)
SEED = 0


def read_moses_csv(path: Path) -> list[str]:
    """SMILES of a MOSES split file (one ``SMILES`` header line, one column)."""
    with gzip.open(path, "rt", encoding="ascii") as fh:
        header = fh.readline().strip()
        if header != "SMILES":
            raise SystemExit(f"{path}: expected a 'SMILES' header, found {header!r}")
        return [line.strip() for line in fh if line.strip()]


def sample(smiles: list[str], size: int, seed: int) -> list[str]:
    """``size`` distinct entries chosen uniformly, kept in file order."""
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(smiles), size=size, replace=False))
    return [smiles[i] for i in picked]


def write_gzip_lines(path: Path, lines: list[str]) -> None:
    payload = ("\n".join(lines) + "\n").encode("ascii")
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(payload)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="moses/dataset/data folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for source_name, out_name, size in SAMPLES:
        smiles = read_moses_csv(args.source / source_name)
        out = args.out / out_name
        write_gzip_lines(out, sample(smiles, size, SEED))
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        print(f"{out}: {size} of {len(smiles)} molecules, seed {SEED}, sha256 {digest}")


if __name__ == "__main__":
    main()
