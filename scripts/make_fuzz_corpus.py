"""Write tests/data/fuzz_monsters.smi: ordinary molecules mixed with pathological SMILES.

Every monster is built here from a short rule, so the committed file can be
regenerated and each line's intent read off its name. Ordinary molecules are
the first 30 of the embedded MOSES sample (what the tiny test model learns).
The expected outcome of reading the file is pinned in tests/test_fuzz_cli.py.

    python scripts/make_fuzz_corpus.py
"""

from __future__ import annotations

from pathlib import Path

from molgen.datasets import default_training_smiles

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "fuzz_monsters.smi"

# (name, SMILES, expected reason or "kept")
MONSTERS: list[tuple[str, str, str]] = [
    ("chain_20000", "C" * 20000, "too_large"),  # segfaults Chem.MolToSmiles
    ("chain_5000", "C" * 5000, "too_large"),  # parses; over max_atoms
    ("aromatic_chain", "c1ccccc1" * 2000, "too_large"),
    ("ring_label_chain", "C1" * 6000, "too_large"),
    ("deep_nesting", "C" + "(C" * 500 + ")" * 500, "too_deep"),
    ("deep_nesting_20000", "C" + "(C" * 20000 + ")" * 20000, "too_large"),  # segfaults when written
    ("open_parens", "(" * 9000, "too_deep"),
    ("close_parens", ")" * 9000, "parse"),
    ("fragments_5000", ".".join(["C"] * 5000), "too_many_fragments"),  # Murcko scaffold takes minutes
    ("fragments_200", ".".join(["CCO"] * 200), "too_many_fragments"),
    ("only_dots", "C" + "." * 5000, "too_many_fragments"),
    ("spiro_rings", "C1CC" + "C2(CC2)" * 600 + "C1", "too_many_rings"),
    ("ring_closure_soup", "C" + "1" * 2000, "too_many_rings"),
    ("ring_number_huge", "C%(999999)CC%(999999)", "parse"),
    ("ring_number_5_digits", "C%(99999)CC%(99999)", "kept"),  # valid: cyclopropane
    ("bracket_giant", "[" + "C" * 5000 + "]", "too_large"),
    ("bracket_open_soup", "[" * 5000, "parse"),
    ("isotope_huge", "[99999999999999999999C]", "parse"),
    ("hydrogens_huge", "[CH99999]", "sanitize"),
    ("charged_chain", "[NH3+]" + "C" * 2000, "too_large"),
]


def main() -> None:
    ordinary = default_training_smiles(limit=30)
    lines = []
    for i, (name, smiles, _) in enumerate(MONSTERS):
        lines.append(ordinary[i] if i < len(ordinary) else "")
        lines.append(f"{smiles} {name}")
    lines += ordinary[len(MONSTERS) :]
    OUT.write_text("\n".join(line for line in lines if line) + "\n")
    print(f"wrote {OUT} ({len(lines)} lines, {OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
