"""Tests of molgen.chem: parsing, properties, fingerprints and pmap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rdkit import Chem, DataStructs

from molgen import chem
from molgen.chem import _pool
from molgen.errors import ConfigError, InvalidSmilesError

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1cnc2c1c(=O)n(C)c(=O)n2C"

# Lines of opt.test.logP-SA (wengong-jin/icml18-jtnn, data/zinc): SMILES and
# the reference value. The file's values are logP - SA; for molecules whose
# rings are all of size <= 6 this equals penalized logP.
ZINC_REFERENCE_SMALL_RINGS = [
    ("COc1cc2c(cc1OC)CC([NH3+])C2", -2.50504567445),
    ("C[C@@H]1CC[C@@H](C(N)=O)CN1C(=O)c1nnn[n-]1", -5.93727899018),
    ("CC[NH+]1CC[C@@H](CNCc2ccc([O-])c[nH+]2)C1", -7.66165927676),
    ("OC[C@@H](Br)C(F)(F)Br", -2.45357941743),
    ("CNC(=O)/C(C#N)=C(/[O-])C1=NN(c2cc(C)ccc2C)C(=O)CC1", -2.51422724186),
]
# Molecules with a 7-membered ring: the file omits the ring penalty of 1.
ZINC_REFERENCE_LARGE_RINGS = [
    ("CC(C)CNC(=O)[C@H](C)[NH+]1CCCN(CC[NH3+])CC1", -7.03137748556),
    ("CCn1ccnc(N2CCCC[C@@H](N3CC[NH+](C)CC3)C2)c1=O", -4.50127151522),
]


# --- parsing -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "not_a_string"),
        (float("nan"), "not_a_string"),
        (b"CCO", "not_a_string"),
        ("", "empty"),
        ("   ", "empty"),
        ("CC)C", "parse"),
        ("C1CC", "parse"),
        ("Xx", "parse"),
        ("CCO CCN", "parse"),
        ("C(C)(C)(C)(C)C", "sanitize"),
        ("c1cccc1", "sanitize"),
    ],
)
def test_try_parse_reports_failure_reason(text, reason):
    mol, got = chem.try_parse(text)
    assert mol is None
    assert got == reason
    assert reason in chem.FAILURE_REASONS
    assert not chem.is_valid(text)
    assert chem.canonical_smiles(text) is None


def test_parse_smiles_raises_with_rdkit_detail():
    with pytest.raises(InvalidSmilesError) as info:
        chem.parse_smiles("C(C)(C)(C)(C)C")
    assert info.value.reason == "sanitize"
    assert "valence" in info.value.detail.lower()
    with pytest.raises(InvalidSmilesError) as info:
        chem.parse_smiles("CC)C")
    assert info.value.reason == "parse"
    assert "parenthes" in info.value.detail


def test_garbage_input_does_not_write_to_stderr(capfd):
    for text in ["CC)C", "C1CC", "C(C)(C)(C)(C)C", "c1cccc1", "[Xe+12]"]:
        chem.try_parse(text)
        chem.explain_failure(text)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_valid_parse_and_surrounding_whitespace():
    mol, reason = chem.try_parse("  CCO\n")
    assert reason is None and mol.GetNumAtoms() == 3
    assert chem.explain_failure("CCO") is None


def test_canonical_smiles_equal_for_different_spellings():
    spellings = ["OCC", "C(O)C", "[CH3][CH2][OH]", "CCO"]
    assert {chem.canonical_smiles(s) for s in spellings} == {"CCO"}
    benzene = {chem.canonical_smiles(s) for s in ["c1ccccc1", "C1=CC=CC=C1", "C1C=CC=CC=1"]}
    assert benzene == {"c1ccccc1"}
    assert chem.canonical_smiles(Chem.MolFromSmiles("OC(=O)C")) == "CC(=O)O"


def test_canonical_smiles_isomeric_flag():
    r, s = "C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"
    assert chem.canonical_smiles(r) != chem.canonical_smiles(s)
    assert chem.canonical_smiles(r, isomeric=False) == chem.canonical_smiles(s, isomeric=False) == "CC(N)C(=O)O"


def test_standardize_strips_counter_ion_and_neutralizes():
    salt = chem.parse_smiles("[Na+].CC(=O)[O-]")
    assert chem.canonical_smiles(chem.standardize(salt)) == "CC(=O)O"
    assert chem.canonical_smiles(chem.standardize(salt, neutralize=False)) == "CC(=O)[O-]"
    assert chem.canonical_smiles(chem.standardize(salt, largest_fragment=False)) == "CC(=O)[O-].[Na+]"
    assert chem.canonical_smiles(salt) == "CC(=O)[O-].[Na+]"  # input untouched
    quat = chem.parse_smiles("C[N+](C)(C)C.[Cl-]")
    assert chem.canonical_smiles(chem.standardize(quat)) == "C[N+](C)(C)C"


def test_canonicalize_many_marks_invalid_with_none():
    assert chem.canonicalize_many(["OCC", "C1CC", None, "c1ccccc1"]) == ["CCO", None, None, "c1ccccc1"]


# --- properties --------------------------------------------------------------


def test_aspirin_and_caffeine_properties():
    aspirin, caffeine = chem.parse_smiles(ASPIRIN), chem.parse_smiles(CAFFEINE)
    # Values from RDKit 2026.09; MW and TPSA match PubChem (180.16, 63.6).
    assert chem.mol_weight(aspirin) == pytest.approx(180.159, abs=1e-3)
    assert chem.mol_weight(caffeine) == pytest.approx(194.194, abs=1e-3)
    assert chem.qed(aspirin) == pytest.approx(0.5501, abs=1e-3)
    assert chem.qed(caffeine) == pytest.approx(0.5385, abs=1e-3)
    assert chem.logp(aspirin) == pytest.approx(1.3101, abs=1e-3)
    assert chem.logp(caffeine) == pytest.approx(-1.0293, abs=1e-3)
    assert chem.tpsa(aspirin) == pytest.approx(63.6, abs=1e-2)
    assert chem.sa_score(aspirin) == pytest.approx(1.580, abs=1e-2)
    assert (chem.hbd(aspirin), chem.hba(aspirin), chem.rotatable_bonds(aspirin)) == (1.0, 3.0, 2.0)
    assert (chem.num_rings(caffeine), chem.num_aromatic_rings(caffeine)) == (2.0, 2.0)
    assert chem.num_heavy_atoms(caffeine) == 14.0


@pytest.mark.parametrize(("smiles", "reference"), ZINC_REFERENCE_SMALL_RINGS)
def test_penalized_logp_matches_jtvae_reference(smiles, reference):
    mol = chem.parse_smiles(smiles)
    assert chem.ring_size_penalty(mol) == 0.0
    assert chem.penalized_logp(mol) == pytest.approx(reference, abs=1e-2)


@pytest.mark.parametrize(("smiles", "reference"), ZINC_REFERENCE_LARGE_RINGS)
def test_penalized_logp_ring_penalty_on_seven_membered_ring(smiles, reference):
    mol = chem.parse_smiles(smiles)
    assert chem.ring_size_penalty(mol) == 1.0
    assert chem.penalized_logp(mol) == pytest.approx(reference - 1.0, abs=1e-2)


def test_penalized_logp_normalized_uses_zinc_constants():
    mol = chem.parse_smiles(ZINC_REFERENCE_LARGE_RINGS[0][0])
    stats = chem.ZINC250K_PLOGP_STATS
    expected = (
        (chem.logp(mol) - stats["logp"][0]) / stats["logp"][1]
        + (-chem.sa_score(mol) - stats["neg_sa"][0]) / stats["neg_sa"][1]
        + (-1.0 - stats["neg_cycle"][0]) / stats["neg_cycle"][1]
    )
    assert chem.penalized_logp_normalized(mol) == pytest.approx(expected)


def test_ring_size_penalty_of_macrocycle():
    assert chem.ring_size_penalty(chem.parse_smiles("C1CCCCCCCCC1")) == 4.0


def _qed_corpus() -> list[str]:
    """Every 200th ZINC-250k molecule (stereo, charges), every 10th of the MOSES test sample, and
    molecules with hydrogen atoms, isotopes, many alerts or none: the molecules QED meets."""
    import gzip
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "data"
    with gzip.open(data / "zinc250k.smi.gz", "rt") as fh:
        zinc = [line.split()[0] for i, line in enumerate(fh) if i % 200 == 0 and line.strip()]
    with gzip.open(data / "moses_test_5k.smi.gz", "rt") as fh:
        moses = [line.split()[0] for i, line in enumerate(fh) if i % 10 == 0 and line.strip()]
    odd = ["[H]C([H])([H])O", "[2H]c1ccccc1C(=O)O", "[H][C@@](F)(Cl)Br", "O=[N+]([O-])c1ccc(N=Nc2ccccc2)cc1C=O",
           "C=CC(=O)OCC1CO1", "CCCCCCCCCCCCCCCC(=O)OOC(=O)C", "[Na+].[Cl-]", "C", "O", "c1ccc2c(c1)ccc1ccccc12", ASPIRIN]
    return zinc + moses + odd


def test_qed_properties_equal_rdkit_field_by_field():
    """The shortcut descriptors of chem.qed equal RDKit's QED.properties exactly, and so does QED."""
    from rdkit.Chem import QED

    mols = [m for m in (chem.parse_smiles(s) for s in _qed_corpus()) if m is not None]
    assert len(mols) > 1_500
    with_h = [Chem.AddHs(m) for m in mols[:200:10]]  # explicit hydrogens: RDKit's RemoveHs path
    differ = [Chem.MolToSmiles(m) for m in mols + with_h if chem.qed_properties(m) != QED.properties(m)]
    assert differ == []
    assert [chem.qed(m) for m in mols[::4]] == [QED.qed(m) for m in mols[::4]]
    counts = {chem.qed_properties(m).ALERTS for m in mols}
    assert {0, 1, 2} <= counts  # the alert count is exercised, not only zero


def test_properties_registry_has_cli_names():
    expected = {"qed", "logp", "sa", "plogp", "mw", "tpsa", "hbd", "hba", "rotb", "rings", "arom_rings", "heavy_atoms"}
    assert expected <= set(chem.PROPERTIES)


def test_compute_properties_frame_with_nan_for_invalid():
    frame = chem.compute_properties([ASPIRIN, "C1CC", None, CAFFEINE], names=["mw", "qed"])
    assert list(frame.columns) == ["smiles", "mw", "qed"]
    assert frame["smiles"].tolist()[0] == ASPIRIN
    assert frame["mw"].iloc[0] == pytest.approx(180.159, abs=1e-3)
    assert frame["mw"].iloc[3] == pytest.approx(194.194, abs=1e-3)
    assert frame[["mw", "qed"]].iloc[1:3].isna().all().all()


def test_compute_properties_all_names_by_default():
    frame = chem.compute_properties([ASPIRIN])
    assert list(frame.columns) == ["smiles", *chem.PROPERTIES]
    assert not math.isnan(frame["plogp"].iloc[0])


def test_compute_properties_rejects_unknown_name():
    with pytest.raises(ConfigError, match="unknown property bogus"):
        chem.compute_properties([ASPIRIN], names=["mw", "bogus"])


# --- fingerprints ------------------------------------------------------------

SIMILARITY_SET = [ASPIRIN, CAFFEINE, "CCO", "CCN", "c1ccccc1O", "c1ccccc1N", "CC(=O)Oc1ccccc1"]


def test_tanimoto_identical_is_one_and_bulk_agrees_with_single():
    fps = [chem.morgan_fingerprint(chem.parse_smiles(s)) for s in SIMILARITY_SET]
    assert chem.tanimoto(fps[0], chem.morgan_fingerprint(ASPIRIN)) == 1.0
    bulk = chem.bulk_tanimoto(fps[0], fps)
    single = [chem.tanimoto(fps[0], fp) for fp in fps]
    np.testing.assert_allclose(bulk, single)
    assert bulk[0] == 1.0 and 0.0 < bulk[-1] < 1.0


def test_fingerprint_array_matches_bit_vectors():
    array = chem.fingerprint_array(SIMILARITY_SET, n_bits=1024)
    assert array.shape == (len(SIMILARITY_SET), 1024) and array.dtype == np.uint8
    for row, smiles in zip(array, SIMILARITY_SET):
        on_bits = list(chem.morgan_fingerprint(smiles, n_bits=1024).GetOnBits())
        assert np.flatnonzero(row).tolist() == on_bits
    mols = [chem.parse_smiles(s) for s in SIMILARITY_SET]
    np.testing.assert_array_equal(chem.fingerprint_array(mols, n_bits=1024), array)


def test_fingerprint_array_rejects_invalid_smiles():
    with pytest.raises(InvalidSmilesError):
        chem.fingerprint_array(["CCO", "C1CC"])
    assert chem.fingerprint_array([]).shape == (0, 2048)


def test_tanimoto_matrix_agrees_with_rdkit():
    fps = [chem.morgan_fingerprint(s) for s in SIMILARITY_SET]
    array = chem.fingerprint_array(SIMILARITY_SET)
    matrix = chem.tanimoto_matrix(array[:3], array)
    expected = np.array([DataStructs.BulkTanimotoSimilarity(fp, fps) for fp in fps[:3]])
    np.testing.assert_allclose(matrix, expected, atol=1e-6)
    np.testing.assert_allclose(chem.tanimoto_matrix(array), chem.tanimoto_matrix(array, array))


def test_tanimoto_matrix_empty_rows_and_shape_mismatch():
    empty = np.zeros((2, 8), dtype=np.uint8)
    assert chem.tanimoto_matrix(empty).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="lengths differ"):
        chem.tanimoto_matrix(np.zeros((1, 8)), np.zeros((1, 16)))


# --- pmap --------------------------------------------------------------------


def test_pmap_pool_preserves_order_and_matches_serial():
    items = [f"{'C' * (i % 7 + 1)}O" if i % 5 else "C1CC" for i in range(300)]
    serial = chem.pmap(chem.canonical_smiles, items, n_jobs=1)
    pooled = chem.pmap(chem.canonical_smiles, items, n_jobs=2, chunksize=7, threshold=50)
    assert pooled == serial
    assert pooled[0] is None and pooled[1] == "CCO"
    assert chem.pmap(abs, range(-500, 0), n_jobs=2, threshold=50) == list(range(500, 0, -1))


def test_library_functions_use_pool_above_threshold(monkeypatch):
    monkeypatch.setattr(_pool, "DEFAULT_THRESHOLD", 20)
    smiles = SIMILARITY_SET * 5
    assert chem.canonicalize_many(smiles, n_jobs=2) == chem.canonicalize_many(smiles, n_jobs=1)
    pooled = chem.compute_properties(smiles, names=["mw", "sa"], n_jobs=2)
    serial = chem.compute_properties(smiles, names=["mw", "sa"], n_jobs=1)
    assert pooled.equals(serial)
    np.testing.assert_array_equal(chem.fingerprint_array(smiles, n_jobs=2), chem.fingerprint_array(smiles, n_jobs=1))


def test_pmap_rejects_bad_n_jobs():
    with pytest.raises(ConfigError, match="n_jobs"):
        chem.pmap(abs, [1], n_jobs=0)
    assert _pool.resolve_n_jobs(None) >= 1


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="parent-death signal is Linux-only")
def test_pool_workers_end_when_the_parent_is_killed(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import os, sys, time\n"
        "from molgen.chem._pool import pmap\n"
        "def slow(x):\n"
        "    open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()\n"
        "    time.sleep(0.01)\n"
        "    return x\n"
        "pmap(slow, range(100000), n_jobs=2, threshold=1)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    deadline = time.time() + 60
    while len(os.listdir(tmp_path)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    workers = [int(name) for name in os.listdir(tmp_path)]
    assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    while any(_alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)
