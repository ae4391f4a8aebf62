"""Check molgen's QED shortcut (``chem.qed_properties``) against RDKit's ``QED.properties`` and time both.

    python scripts/check_qed.py --every 5

Reads every N-th molecule of ZINC-250k (stereo, charges) and of the MOSES test
sample in ``data/``, counts molecules whose eight QED descriptors or QED value
differ (must be 0 after an RDKit upgrade too), and prints CPU milliseconds per
molecule for each route as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

from rdkit import Chem, RDLogger
from rdkit.Chem import QED

from molgen import chem

DATA = Path(__file__).resolve().parents[1] / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=5, help="take every N-th molecule of each file")
    args = parser.parse_args()
    RDLogger.DisableLog("rdApp.*")
    smiles: list[str] = []
    for name in ("zinc250k.smi.gz", "moses_test_5k.smi.gz"):
        with gzip.open(DATA / name, "rt") as fh:
            smiles += [line.split()[0] for i, line in enumerate(fh) if i % args.every == 0 and line.strip()]
    mols = [m for m in map(Chem.MolFromSmiles, smiles) if m is not None]
    t0 = time.process_time()
    ours = [(chem.qed_properties(m), chem.qed(m)) for m in mols]
    t1 = time.process_time()
    rdkit = [(QED.properties(m), QED.qed(m)) for m in mols]
    t2 = time.process_time()
    differ = sum(a != b for a, b in zip(ours, rdkit))
    result = {"molecules": len(mols), "differ": differ, "ms_per_molecule_molgen": round(1000 * (t1 - t0) / len(mols), 3),
              "ms_per_molecule_rdkit": round(1000 * (t2 - t1) / len(mols), 3), "rdkit": Chem.rdBase.rdkitVersion}  # fmt: skip
    print(json.dumps(result))
    raise SystemExit(1 if differ else 0)


if __name__ == "__main__":
    main()
