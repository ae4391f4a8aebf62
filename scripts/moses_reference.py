"""Run the original MOSES metric code, for comparison with molgen.metrics.

The MOSES code is imported from an unpacked ``molsets`` 0.3.1 wheel (not
installed anywhere), and ``fcd_torch`` from a ``pip install --target`` folder:

    pip install --target /tmp/moses-extra fcd_torch --no-deps
    python scripts/moses_reference.py score --generated gen.smi --reference ref.smi \
        --train train.smi --out result.json

MOSES 0.3.1 predates RDKit 2023, NumPy 2 and pandas 2; this script patches the
few names it needs at import time (``rdkit.six``, ``np.NaN``,
``pandas.DataFrame.append``, ``torch.load``'s ``weights_only`` default) without
touching the wheel's files.

``--reference moses-test`` scores against the MOSES test set with the
precomputed statistics the wheel ships (as ``moses.get_all_metrics`` does by
default; that also computes the scaffold-test metrics). Any other value is a
SMILES file, whose statistics MOSES computes first.

``make-inputs`` writes the fixed inputs of ``tests/test_metrics.py``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import platform
import random
import resource
import sys
import time
import types
from pathlib import Path

DEFAULT_MOSES_ROOT = Path("/tmp/wheels/molsets")
DEFAULT_EXTRA = Path("/tmp/moses-extra")
SETUP = (
    "molsets-0.3.1 wheel unpacked at --moses-root; "
    "pip install --target /tmp/moses-extra fcd_torch==1.0.7 --no-deps; run with molgen's venv python"
)


def patch_for_moses(moses_root: Path, extra: Path) -> None:
    """Make the unpacked MOSES wheel importable on a current stack, without touching its files."""
    import numpy as np
    import pandas as pd
    import torch

    if str(moses_root) in sys.path:
        return
    sys.path[:0] = [str(extra), str(moses_root)]
    six = types.ModuleType("rdkit.six")
    six.iteritems = lambda d: iter(d.items())
    six.moves = types.SimpleNamespace(cPickle=__import__("pickle"))
    sys.modules["rdkit.six"] = six
    sys.modules["rdkit.six.moves"] = six.moves
    if not hasattr(np, "NaN"):
        np.NaN = np.nan
    if not hasattr(pd.DataFrame, "append"):
        pd.DataFrame.append = lambda self, other, sort=False: pd.concat([self, other], sort=sort)
    original_load = torch.load
    torch.load = lambda *a, **k: original_load(*a, **{"weights_only": False, **k})
    # Skip moses/__init__.py, which imports every model (and their dependencies).
    package = types.ModuleType("moses")
    package.__path__ = [str(moses_root / "moses")]
    sys.modules["moses"] = package
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")


def import_moses(moses_root: Path, extra: Path) -> types.ModuleType:
    """Import ``moses.metrics.metrics`` from the unpacked wheel, with compatibility patches."""
    patch_for_moses(moses_root, extra)
    import moses.metrics.metrics as metrics

    return metrics


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        lines = handle.read().splitlines()
    if lines and lines[0].strip().upper() == "SMILES":
        lines = lines[1:]
    return [line.split()[0] if line.strip() else "" for line in lines]


def score(args: argparse.Namespace) -> None:
    metrics_module = import_moses(args.moses_root, args.extra)
    from moses.dataset import get_dataset

    generated = read_lines(args.generated)
    train = None
    if args.train == "moses-train":
        train = list(get_dataset("train"))
    elif args.train:
        train = read_lines(Path(args.train))
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    if args.reference == "moses-test":
        result = metrics_module.get_all_metrics(generated, n_jobs=args.n_jobs, train=train)
    else:
        reference = read_lines(Path(args.reference))
        ptest = metrics_module.compute_intermediate_statistics(reference, n_jobs=args.n_jobs)
        result = metrics_module.get_all_metrics(
            generated,
            n_jobs=args.n_jobs,
            test=reference,
            ptest=ptest,
            test_scaffolds=reference,
            ptest_scaffolds=ptest,
            train=train,
        )
        result = {k: v for k, v in result.items() if not k.endswith("/TestSF")}
    elapsed = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    out = {
        "command": " ".join(["python", *sys.argv]),
        "implementation": "MOSES (molsets 0.3.1, fcd_torch), patched for current RDKit/NumPy/pandas",
        "setup": SETUP,
        "versions": _versions(),
        "python": platform.python_version(),
        "inputs": {
            "generated": _describe(args.generated),
            "reference": args.reference
            if args.reference == "moses-test"
            else _describe(Path(args.reference)),
            "train": args.train
            if args.train in (None, "moses-train")
            else _describe(Path(args.train)),
        },
        "n_jobs": args.n_jobs,
        "seconds": round(elapsed, 2),
        "cpu_seconds": round(cpu, 2),
        "metrics": {k: float(v) for k, v in result.items()},
    }
    text = json.dumps(out, indent=2, sort_keys=False)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


def make_inputs(args: argparse.Namespace) -> None:
    """Write the fixed small inputs: 2,000 test molecules as reference, 3,000
    train molecules, and 1,000 'generated' strings mixing unseen test
    molecules, training molecules, duplicates, ZINC molecules with charges or
    salts, and mutated (mostly invalid) strings."""
    rng = random.Random(args.seed)
    data = args.moses_root / "moses" / "dataset" / "data"
    test = read_lines(data / "test.csv.gz")
    train = read_lines(data / "train.csv.gz")
    zinc = read_lines(args.zinc)
    rng.shuffle(test)
    train_sample = rng.sample(train, 3000)
    reference = test[:2000]
    unseen = test[2000:2600]
    from_train = train_sample[:150]
    odd = [s for s in zinc if "+" in s or "-]" in s or "." in s or "P" in s][:60]
    mutated = [_mutate(rng.choice(unseen), rng) for _ in range(120)]
    garbage = [
        "",
        "C1CC",
        "xyz",
        "C(C)(C)(C)(C)C",
        "c1cccc1",
        "[Na+].[Cl-]",
        "N#N#N",
        "((",
        "Cl",
        "O=O",
    ]
    duplicates = [rng.choice(unseen[:100]) for _ in range(60)]
    generated = unseen[:600] + from_train + odd + mutated + garbage + duplicates
    generated = generated[:1000]
    rng.shuffle(generated)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics_reference_2k.smi").write_text("\n".join(reference) + "\n")
    (out / "metrics_train_3k.smi").write_text("\n".join(train_sample) + "\n")
    (out / "metrics_generated_1k.smi").write_text("\n".join(generated) + "\n")
    print(
        f"wrote {len(reference)} reference, {len(train_sample)} train, {len(generated)} generated to {out}"
    )


def _mutate(smiles: str, rng: random.Random) -> str:
    chars = list(smiles)
    for _ in range(rng.randint(1, 2)):
        position = rng.randrange(len(chars))
        action = rng.choice(("delete", "insert", "replace"))
        if action == "delete" and len(chars) > 1:
            del chars[position]
        elif action == "insert":
            chars.insert(position, rng.choice("CNO()=1c#"))
        else:
            chars[position] = rng.choice("CNOcn=(1")
    return "".join(chars)


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (MOSES's pools)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _versions() -> dict:
    from importlib.metadata import version

    import fcd_torch  # noqa: F401  (imported by MOSES already; version from its dist-info)

    return {
        name: version(name) for name in ("rdkit", "numpy", "scipy", "pandas", "torch", "fcd_torch")
    }


def _describe(path: Path) -> dict:
    return {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--moses-root", type=Path, default=DEFAULT_MOSES_ROOT, help="unpacked molsets wheel"
    )
    parser.add_argument(
        "--extra", type=Path, default=DEFAULT_EXTRA, help="folder holding fcd_torch"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("score", help="score a generated file with MOSES")
    run.add_argument("--generated", type=Path, required=True)
    run.add_argument("--reference", default="moses-test", help="'moses-test' or a SMILES file")
    run.add_argument("--train", default=None, help="'moses-train', a SMILES file, or nothing")
    run.add_argument("--n-jobs", type=int, default=1)
    run.add_argument("--out", type=Path, default=None)
    run.set_defaults(func=score)
    inputs = sub.add_parser("make-inputs", help="write the fixed inputs of tests/test_metrics.py")
    inputs.add_argument(
        "--zinc", type=Path, required=True, help="a SMILES file with charged molecules (ZINC250k)"
    )
    inputs.add_argument("--seed", type=int, default=0)
    inputs.add_argument("--out-dir", type=Path, default=Path("tests/data"))
    inputs.set_defaults(func=make_inputs)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
