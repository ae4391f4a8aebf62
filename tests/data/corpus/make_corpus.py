"""Write the reader test corpus (run from anywhere; the files are committed).

Each file is a kind of damage or formatting that molecule files arrive with;
tests/test_readers_corpus.py states, per file, exactly what must be kept and
what must be skipped and why.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

HERE = Path(__file__).parent

# One SMILES per line with names, blank and whitespace-only lines, bad molecules.
PLAIN_LINES = [
    "CCO ethanol",
    "c1ccccc1\tbenzene",
    "",
    "C1CC broken_ring",
    "   ",
    "N#N",
    "C(C)(C)(C)(C)C pentavalent_carbon",
    "[Na+].[Cl-] salt",
    "xyz not_a_molecule",
]

QUOTED_CSV = [
    "id,name,smiles,score",
    '1,"ethanol, absolute",CCO,0.5',
    '2,"benzene ""pure""",c1ccccc1,1.0',
    '3,"unterminated quote,c1ccncc1,0.3',
    "4,pyridine,c1ccncc1,0.4",
    "5,short_row",
    ",,,",
    "6,empty_smiles,,0.1",
    '7,quoted_smiles,"CC(=O)O",0.2',
    "8,bad,C1CC,0.9",
]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def main() -> None:
    plain = ("\n".join(PLAIN_LINES) + "\n").encode()
    files = {
        "plain.smi": plain,
        "windows.smi": b"\xef\xbb\xbf" + plain.replace(b"\n", b"\r\n"),
        "old_mac.smi": plain.replace(b"\n", b"\r"),
        "no_final_newline.smi": plain.rstrip(b"\n"),
        "quoted.csv": ("\n".join(QUOTED_CSV) + "\n").encode(),
        "quoted.csv.gz": _gzip(("\n".join(QUOTED_CSV) + "\n").encode()),
        "gzip_without_suffix.txt": _gzip(plain),
        "noheader.csv": b"CCO,1\nc1ccccc1,2\nC1CC,3\nOCC,4\n",
        "noheader.tsv": b"CCO\tethanol\nN#N\tnitrogen\n\nC1CC\tbroken\nO=C=O\tcarbon dioxide\n",
        "header.tsv": b"name\tsmiles\twater_count\nwater\tO\t1\nmethane\tC\t0\nnothing\t\t0\nammonia\tN\t2\n",
        "utf16.tsv": "name\tsmiles\r\nethanol\tCCO\r\nbroken\tC1CC\r\nbenzene\tc1ccccc1\r\n".encode("utf-16"),
        "latin1.csv": b"smiles,name\nCCO,caf\xe9\nC\xe9C,bad_bytes_in_smiles\nCCN,ok\n\xff\xfe,x\n",
        "nul_bytes.smi": b"CCO\nCC\x00O\n\x00CCN\nN#N\n",
        "blank_lines_only.smi": b"\n  \n\r\n\t\n",
        "empty.smi": b"",
        "empty.csv.gz": _gzip(b""),
        "header_only.csv": b"smiles,name\n",
    }
    rng = random.Random(7)
    files["binary.smi"] = b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(4096))
    # 2,000 valid molecules (alkanes, alcohols, diols), gzipped, cut in the middle.
    lines = [("C" * (i % 40 + 1)) + ("O" * (i // 40 % 3)) + f" mol{i}" for i in range(2000)]
    blob = _gzip(("\n".join(lines) + "\n").encode())
    files["truncated.smi.gz"] = blob[: len(blob) // 2]
    for name, data in files.items():
        (HERE / name).write_bytes(data)


if __name__ == "__main__":
    main()
