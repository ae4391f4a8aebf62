"""PMO tasks against values worked out by hand from their definitions, and the AUC top-10 metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rdkit import Chem, DataStructs
from rdkit.Chem import QED, Descriptors
from rdkit.Chem import rdFingerprintGenerator as fpgen

from molgen.errors import ConfigError
from molgen.optimize import parse_objective, pmo
from molgen.optimize.pmo import PMO_TASKS, auc_top_k, score, top_k_points


def _ecfp4_counts(smiles: str):
    return fpgen.GetMorganGenerator(radius=2).GetSparseCountFingerprint(Chem.MolFromSmiles(smiles))


def test_twenty_tasks_in_pmo_order():
    assert len(PMO_TASKS) == 20
    assert PMO_TASKS[0] == "albuterol_similarity" and PMO_TASKS[-1] == "zaleplon_mpo"


@pytest.mark.parametrize(
    "task, target",
    [
        ("celecoxib_rediscovery", pmo.CELECOXIB),
        ("troglitazone_rediscovery", pmo.TROGLITAZONE),
        ("thiothixene_rediscovery", pmo.THIOTHIXENE),
        ("albuterol_similarity", pmo.ALBUTEROL),
        ("mestranol_similarity", pmo.MESTRANOL),
    ],
)
def test_the_target_itself_scores_one(task, target):
    # A differently written SMILES of the same molecule gives the same score.
    other = Chem.MolToSmiles(Chem.MolFromSmiles(target), doRandom=True, canonical=False)
    assert score(task, [target, other]) == pytest.approx([1.0, 1.0])


def test_rediscovery_is_count_tanimoto_and_invalid_scores_zero():
    # Count Tanimoto by hand: sum of minima over sum of maxima of the Morgan counts.
    a, b = _ecfp4_counts("CCOc1ccccc1"), _ecfp4_counts(pmo.CELECOXIB)
    ca, cb = a.GetNonzeroElements(), b.GetNonzeroElements()
    keys = set(ca) | set(cb)
    by_hand = sum(min(ca.get(k, 0), cb.get(k, 0)) for k in keys) / sum(max(ca.get(k, 0), cb.get(k, 0)) for k in keys)
    assert score("celecoxib_rediscovery", ["CCOc1ccccc1", "not a smiles", ""]) == pytest.approx([by_hand, 0.0, 0.0])
    assert 0 < by_hand < 0.3


def test_median1_is_geometric_mean_of_the_two_similarities():
    sim = DataStructs.TanimotoSimilarity(_ecfp4_counts(pmo.CAMPHOR), _ecfp4_counts(pmo.MENTHOL))
    assert score("median1", [pmo.CAMPHOR, pmo.MENTHOL]) == pytest.approx([math.sqrt(sim), math.sqrt(sim)])


def test_isomer_prev_rule_reads_the_smiles_string_as_a_formula():
    # 4-methyl-2-nitroaniline is C7H8N2O2: every per-element term is 1.
    smiles = "Cc1ccc(N)c([N+](=O)[O-])c1"
    # "prev" total: the regex sees Cc(1) N N O O -> 5 atoms, so the total term is Gaussian(19, 2) at 5.
    assert pmo._formula_counts(Chem.MolToSmiles(Chem.MolFromSmiles(smiles))) == [("Cc", 1), ("N", 1), ("N", 1), ("O", 1), ("O", 1)]
    expected = math.exp(-0.5 * ((5 - 19) / 2) ** 2) ** (1 / 5)
    assert score("isomers_c7h8n2o2", [smiles]) == pytest.approx([expected])
    # The GuacaMol rule counts all 19 atoms with hydrogens: a perfect isomer.
    assert score("isomers_c7h8n2o2_fixed", [smiles]) == pytest.approx([1.0])
    # A ring digit after a capital letter is read as a count, and Cl is one "element".
    assert pmo._formula_counts("Cc2ccccc2Cl") == [("Cc", 2), ("Cl", 1)]


def test_isomer_element_terms():
    # Ethanol against C7H8N2O2 (fixed rule): C2 H6 N0 O1, 9 atoms in all.
    g = lambda x, mu, s: math.exp(-0.5 * ((x - mu) / s) ** 2)  # noqa: E731
    terms = [g(2, 7, 1), g(6, 8, 1), g(0, 2, 1), g(1, 2, 1), g(9, 19, 2)]
    assert score("isomers_c7h8n2o2_fixed", ["CCO"])[0] == pytest.approx(math.prod(terms) ** (1 / 5))


def test_hop_tasks_on_their_target():
    # deco_hop: pharmacophore 1, sulfone present (0), benzothiazole amine present (0), scaffold present (1).
    # scaffold_hop: pharmacophore 1, decoration present (1), scaffold present although it must be absent (0).
    assert score("deco_hop", [pmo.DECO_TARGET]) == pytest.approx([0.5])
    assert score("scaffold_hop", [pmo.DECO_TARGET]) == pytest.approx([2 / 3])


def test_valsartan_smarts_and_sitagliptin_constants():
    sitagliptin = Chem.MolFromSmiles(pmo.SITAGLIPTIN)
    assert Descriptors.MolLogP(sitagliptin) == pytest.approx(2.0165, abs=1e-4)
    assert Descriptors.TPSA(sitagliptin) == pytest.approx(77.04, abs=0.01)
    assert Descriptors.BertzCT(sitagliptin) == pytest.approx(896.38, abs=0.01)
    assert score("valsartan_smarts", [pmo.SITAGLIPTIN]) == [0.0]  # SMARTS absent: geometric mean is 0
    probe = "CN(C=O)Cc1ccc(-c2ccccc2)cc1"
    mol = Chem.MolFromSmiles(probe)
    g = lambda x, mu, s: math.exp(-0.5 * ((x - mu) / s) ** 2)  # noqa: E731
    terms = [1.0, g(Descriptors.MolLogP(mol), 2.0165, 0.2), g(Descriptors.TPSA(mol), 77.04, 5), g(Descriptors.BertzCT(mol), 896.38, 30)]
    assert score("valsartan_smarts", [probe])[0] == pytest.approx(math.prod(terms) ** 0.25, rel=1e-3)


def test_qed_and_mpo_ranges():
    mols = ["CCO", "c1ccccc1C(=O)O", pmo.OSIMERTINIB, pmo.RANOLAZINE]
    assert score("qed", mols) == pytest.approx([QED.qed(Chem.MolFromSmiles(s)) for s in mols])
    for task in PMO_TASKS:
        values = score(task, mols)
        assert all(0 <= v <= 1 for v in values), task


def test_pmo_objective_terms_and_errors():
    obj = parse_objective("pmo:qed")
    assert obj.terms[0].label == "pmo:qed"
    assert obj(["CCO"])[0] == pytest.approx(QED.qed(Chem.MolFromSmiles("CCO")))
    with pytest.raises(ConfigError, match="unknown PMO task 'nope'"):
        parse_objective("pmo:nope")


# -- AUC top-10 ------------------------------------------------------------------


def test_auc_on_hand_made_curves():
    ones = [1.0] * 200
    # Curve points (0, 0), (100, 1), (200, 1): area 50 + 100 = 150.
    assert auc_top_k(ones, budget=200) == pytest.approx(0.75)
    assert auc_top_k(ones, budget=1000) == pytest.approx((150 + 800) / 1000)  # last value held flat
    assert auc_top_k(ones, budget=1000, finish=False) == pytest.approx(0.15)
    # Points (100, 0.5), (200, 1.0): area 25 + 75.
    assert auc_top_k([0.5] * 100 + [1.0] * 100, budget=200) == pytest.approx(0.5)
    # Fewer than 10 molecules: the mean of those there are; NaN (a failed call) counts as 0.
    calls, means = top_k_points([0.2, float("nan"), 0.8], budget=10)
    assert calls.tolist() == [3] and means == pytest.approx([1.0 / 3])
    # Only the 10 best count: 10 ones then 90 zeros stay at 1.0.
    assert top_k_points([1.0] * 10 + [0.0] * 90)[1] == pytest.approx([1.0])
    # A partial last block: points at 100 and 150.
    calls, _ = top_k_points(np.linspace(0, 1, 150))
    assert calls.tolist() == [100, 150]
    with pytest.raises(ConfigError):
        auc_top_k([1.0], budget=0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=100, max_size=400), st.integers(1, 4))
def test_auc_of_a_prefix_is_a_lower_bound(scores, blocks):
    # From call 100 on the top-10 mean never falls; before 10 molecules it can (the mean of fewer).
    n = min(100 * blocks, len(scores) // 100 * 100)
    assert auc_top_k(scores[:n], budget=n) <= auc_top_k(scores, budget=len(scores)) + 1e-12
    assert 0 <= auc_top_k(scores, budget=500) <= 1
