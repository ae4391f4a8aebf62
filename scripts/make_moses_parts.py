"""Write ``data/moses_<split>_parts.npz``: molgen's parts of the MOSES test sets' statistics.

``molgen benchmark --reference moses-test`` assembles the reference statistics
from these parts and the ``*_stats.npz`` files of the ``molsets`` wheel
(:mod:`molgen.metrics.moses_stats`), so a first run needs no pass over the
176k reference molecules. This script does that pass once:

* BRICS fragment and Bemis--Murcko scaffold counts with the installed RDKit
  (the wheel's counters were made with a 2019 RDKit, whose canonical SMILES
  differ for some pieces);
* the GuacaMol KL sample (descriptors and nearest-neighbour similarities);
* the ChemNet mean and covariance, compared with the wheel's; ``--with-fcd``
  ships them too (when the wheel's are not the same numbers).

It checks that every molecule of the split is valid and distinct and that the
file's order is the wheel's fingerprint order, which the assembly relies on.

    python scripts/make_moses_parts.py --moses-dir ~/.cache/molgen/moses --out data --report runs/moses_parts.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
import types
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from molgen.chem._pool import pmap  # noqa: E402
from molgen.metrics import _features  # noqa: E402
from molgen.metrics.fcd import chemnet_statistics, frechet_distance  # noqa: E402
from molgen.metrics.moses_stats import (  # noqa: E402
    read_moses_stats,
    reference_parts_path,
    write_reference_parts,
)
from molgen.metrics.reference import kl_internal_similarity, kl_sample, read_smiles_file  # noqa: E402
from molgen.utils.progress import progress_bar  # noqa: E402


def _pieces(canonical: str) -> tuple[tuple[str, ...], str | None, str]:
    """Fragments, scaffold and ChemNet input of one molecule (the parts of ``featurize`` the parts need)."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(canonical)
        return _features._brics_fragments(mol), _features._scaffold(mol), Chem.MolToSmiles(mol)


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def make_parts(split: str, moses_dir: Path, out: Path, with_fcd: bool, n_jobs: int | None, chemnet: bool = True) -> dict:
    start, cpu = time.perf_counter(), _cpu()
    source = moses_dir / f"{split}.csv.gz"
    wheel_file = moses_dir / f"{split}_stats.npz"
    smiles = read_smiles_file(source)
    with progress_bar(len(smiles), f"{split}: canonical", unit="mol", log_every=20) as bar:
        pairs = pmap(_features.canonicalize, smiles, n_jobs=n_jobs, progress=bar)
    canonical = [p.smiles for p in pairs]
    if any(c is None for c in canonical) or len(set(canonical)) != len(canonical):
        raise SystemExit(f"{split}: invalid or duplicate molecules; the assembly needs one row per line")
    wheel = read_moses_stats(wheel_file)
    if len(wheel.fingerprints) != len(canonical):
        raise SystemExit(f"{split}: {len(canonical)} molecules but {len(wheel.fingerprints)} wheel fingerprints")
    with progress_bar(len(canonical), f"{split}: fragments", unit="mol", log_every=20) as bar:
        pieces = pmap(_pieces, canonical, n_jobs=n_jobs, progress=bar)
    fragments: Counter[str] = Counter(f for p in pieces for f in p[0])
    scaffolds: Counter[str] = Counter(p[1] for p in pieces if p[1] is not None)
    _, kl_descriptors, kl_packed = kl_sample([p.flat for p in pairs], "random", n_jobs)
    counts = np.ones(len(canonical), dtype=np.int64)
    mu = sigma = None
    if chemnet or with_fcd:
        with progress_bar(len(canonical), f"{split}: ChemNet", unit="mol", log_every=20) as bar:
            mu, sigma = chemnet_statistics([p[2] for p in pieces], counts, progress=bar)
    stats = types.SimpleNamespace(
        counts=counts,
        passes_filters=None,
        fragment_keys=np.array(list(fragments), dtype=np.str_),
        fragment_counts=np.array(list(fragments.values()), dtype=np.int64),
        scaffold_keys=np.array(list(scaffolds), dtype=np.str_),
        scaffold_counts=np.array(list(scaffolds.values()), dtype=np.int64),
        kl_descriptors=kl_descriptors,
        kl_max_similarity=kl_internal_similarity(kl_packed),
        fcd_mu=mu,
        fcd_sigma=sigma,
    )
    path = out / reference_parts_path(split).name
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    stats_digest = hashlib.sha256(wheel_file.read_bytes()).hexdigest()
    write_reference_parts(stats, digest, stats_digest, path, with_fcd=with_fcd)
    wheel_frag = wheel.fragments
    report = {
        "split": split,
        "molecules": len(canonical),
        "file_is_canonical": sum(a == b for a, b in zip(smiles, canonical, strict=True)),
        "parts_file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "parts_bytes": path.stat().st_size,
        "with_fcd": with_fcd,
        "fragments": len(fragments),
        "fragment_keys_not_in_wheel": len(set(fragments) - set(wheel_frag)),
        "fragment_counts_differ": sum(fragments[k] != wheel_frag.get(k, 0) for k in fragments),
        "scaffolds": len(scaffolds),
        "scaffold_keys_not_in_wheel": len(set(scaffolds) - set(wheel.scaffolds)),
        "wall_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(_cpu() - cpu, 1),
    }
    if mu is not None:
        report.update(
            chemnet_mu_max_abs_diff=float(np.abs(mu - wheel.fcd_mu.astype(np.float64)).max()),
            chemnet_sigma_max_abs_diff=float(np.abs(sigma - wheel.fcd_sigma).max()),
            fcd_molgen_vs_wheel_gaussians=frechet_distance(mu, sigma, wheel.fcd_mu.astype(np.float64), wheel.fcd_sigma),
        )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moses-dir", type=Path, default=Path.home() / ".cache" / "molgen" / "moses")
    parser.add_argument("--out", type=Path, default=ROOT / "data")
    parser.add_argument("--splits", nargs="+", default=["test", "test_scaffolds"])
    parser.add_argument("--with-fcd", action="store_true", help="ship molgen's ChemNet mean and covariance too")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--no-chemnet", action="store_true", help="skip the ChemNet pass (and the FCD comparison); not with --with-fcd")
    parser.add_argument("--report", type=Path, default=None, help="also write the checks as JSON here")
    args = parser.parse_args()
    results = [make_parts(split, args.moses_dir.expanduser(), args.out, args.with_fcd, args.n_jobs, not args.no_chemnet) for split in args.splits]
    text = json.dumps(results, indent=2)
    print(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")


if __name__ == "__main__":
    main()
