"""The molecule guard (size/shape limits before RDKit) and worker pools that survive crashing molecules."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molgen import chem
from molgen.chem import _pool, guard
from molgen.chem.guard import (
    MoleculeLimits,
    check_smiles,
    limits_applied,
    limits_from_text,
)
from molgen.datasets import default_training_smiles, read_molecules, readers
from molgen.errors import ConfigError, WorkerCrashError

DATA = Path(__file__).parent / "data"


@pytest.mark.slow  # RDKit spends ~15 s writing most of the chain before it overflows
def test_rdkit_alone_segfaults_on_a_giant_chain():
    # Why the guard exists: RDKit's SMILES writer recurses once per atom of a chain.
    code = "from rdkit import Chem; Chem.MolToSmiles(Chem.MolFromSmiles('C' * 20000))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == -signal.SIGSEGV


def test_guarded_calls_reject_the_giant_chain_with_a_reason():
    assert chem.try_parse("C" * 20000) == (None, "too_large")
    assert chem.canonical_smiles("C" * 20000) is None
    err = chem.explain_failure("C" * 20000)
    assert err.reason == "too_large" and "max_smiles_chars=10000" in str(err)
    big = chem.parse_smiles("C" * 900)
    assert chem.canonical_smiles(big) == "C" * 900
    with limits_applied(MoleculeLimits(max_atoms=500)):
        assert chem.canonical_smiles(big) is None  # a molecule object is checked too
        assert chem.explain_failure("C" * 900).detail == "900 atoms; the limit is max_atoms=500"


def test_real_molecules_pass_the_guard():
    molecules = default_training_smiles() + [line.split()[0] for line in (DATA / "metrics_reference_2k.smi").read_text().splitlines() if line.strip()]
    assert len(molecules) > 2000
    assert [s for s in molecules if check_smiles(s) is not None] == []
    # A 100-residue peptide (501 heavy atoms, 1,001 characters): far larger than any drug, still accepted.
    peptide = "NC(C)C(=O)" + "NC(C)C(=O)" * 98 + "NC(C)C(=O)O"
    mol, reason = chem.try_parse(peptide)
    assert reason is None and mol.GetNumHeavyAtoms() == 501


def _expected(kind: str, size: int) -> tuple[str, str | None]:
    """The SMILES of a shape and the verdict the default limits must give it (``"other"``: an RDKit error)."""
    if kind == "chain":
        smiles, atoms = "C" * size, size
        return smiles, "too_large" if atoms > 1000 else None
    if kind == "nest":
        smiles = "C" + "(C" * size + ")" * size
        return smiles, "too_large" if len(smiles) > 10000 else "too_deep" if size > 200 else None
    if kind == "fragments":
        smiles = ".".join(["C"] * size)
        return smiles, "too_large" if len(smiles) > 10000 else "too_many_fragments" if size > 100 else None
    if kind == "spiro":
        smiles = "C1CC" + "C2(CC2)" * size + "C1"
        if len(smiles) > 10000:
            return smiles, "too_large"
        return smiles, "too_many_rings" if size + 1 > 500 else "too_large" if 4 + 3 * size > 1000 else None
    if kind == "soup":
        smiles = "C" + "1" * size
        return smiles, "too_large" if len(smiles) > 10000 else "too_many_rings" if size > 1000 else "other"
    smiles = "[" + "C" * size + "]"
    return smiles, "too_large" if size > 64 else None if size == 1 else "other"


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["chain", "nest", "fragments", "spiro", "soup", "bracket"]),
    size=st.one_of(st.integers(1, 300), st.integers(300, 1500), st.integers(1500, 25000)),
)
def test_generated_shapes_get_the_right_verdict_and_never_crash(kind, size):
    smiles, expected = _expected(kind, size)
    mol, reason = chem.try_parse(smiles)
    if expected == "other":
        assert reason in ("parse", "sanitize")
    else:
        assert reason == expected
    if mol is not None:
        # What passes the guard is safe for the recursive calls (a crash here would kill the test run).
        assert chem.try_parse(chem.canonical_smiles(mol))[0].GetNumAtoms() == mol.GetNumAtoms()
        chem.morgan_fingerprint(mol)


def test_limits_are_configurable_and_validated():
    assert limits_from_text("max_atoms=20, max_fragments=3") == MoleculeLimits(max_atoms=20, max_fragments=3)
    assert limits_from_text("off") is guard.NO_LIMITS
    with pytest.raises(ConfigError, match="max_atoms"):
        limits_from_text("max_atom=20")
    with pytest.raises(ConfigError, match="positive integer"):
        MoleculeLimits(max_atoms=0)
    with limits_applied(MoleculeLimits(max_fragments=3)):
        assert check_smiles("C.C.C.C") == "too_many_fragments"
    assert check_smiles("C.C.C.C") is None
    with limits_applied(guard.NO_LIMITS):
        assert check_smiles("C" * 20000) is None


def test_limits_from_the_environment(tmp_path):
    code = "from molgen import chem; print(chem.get_limits().max_atoms, chem.try_parse('C' * 30)[1])"
    env = dict(os.environ, MOLGEN_LIMITS="max_atoms=25,max_bracket_chars=10")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1])
    assert proc.stdout.split() == ["25", "too_large"], proc.stderr


# -- worker pools survive a molecule that kills or stalls its worker -------------------------


def _killer(x: int) -> int:
    if x == 77:
        os.kill(os.getpid(), signal.SIGSEGV)
    if x == 123:
        time.sleep(60)
    return 2 * x


def _killer_lists(xs: list[int]) -> list[int]:
    return [_killer(x) for x in xs]


@pytest.mark.parametrize("mapper", [_pool.pmap, _pool.pmap_lists])
def test_pool_redoes_a_broken_chunk_item_by_item(mapper):
    func = _killer if mapper is _pool.pmap else _killer_lists
    with limits_applied(MoleculeLimits(max_seconds=1)):
        out = mapper(func, range(300), n_jobs=2, threshold=10, on_failure=lambda x, why: why)
    assert out[77] == "crashed" and out[123] == "timeout"
    assert [v for i, v in enumerate(out) if i not in (77, 123)] == [2 * i for i in range(300) if i not in (77, 123)]


def test_pool_without_on_failure_names_the_item():
    with pytest.raises(WorkerCrashError, match=r"died \(exit code -11\) on 77"):
        _pool.pmap(_killer, range(100), n_jobs=2, threshold=10)


def _crash_on_marker(text: str, canonicalize: bool):
    if text == "CCCCCCCCCC":
        os.kill(os.getpid(), signal.SIGSEGV)
    return readers_original(text, canonicalize)


readers_original = readers._canonical_or_reason


def test_reader_counts_a_molecule_that_kills_its_worker(tmp_path, monkeypatch):
    path = tmp_path / "in.smi"
    good = default_training_smiles(limit=200)
    path.write_text("\n".join(good[:100] + ["CCCCCCCCCC"] + good[100:]) + "\n")
    monkeypatch.setattr(readers, "_canonical_or_reason", _crash_on_marker)
    monkeypatch.setattr(readers, "_PARALLEL_MIN", 10)
    rejects = tmp_path / "rejects.csv"
    result = read_molecules(path, n_jobs=2, rejects_to=rejects)
    assert result.skipped == {"crashed": 1}
    assert result.smiles == [chem.canonical_smiles(s) for s in good]
    assert rejects.read_text().splitlines()[1:] == ["101,CCCCCCCCCC,crashed"]
