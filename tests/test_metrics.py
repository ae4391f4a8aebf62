"""Tests of molgen.metrics and molgen.metrics.benchmark.

Agreement with the original MOSES code is checked against values that
``scripts/moses_reference.py`` computed on the fixed inputs in ``tests/data``
(the command is stored in each ``moses_reference_*.json``).
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from molgen.errors import ConfigError, DataError
from molgen.metrics import (
    compute_metrics,
    estimated_internal_diversity,
    frechet_distance,
    internal_diversity,
    nearest_similarity,
    read_smiles_file,
    reference_statistics,
)
from molgen.metrics import reference as reference_module
from molgen.metrics import similarity as similarity_module
from molgen.metrics.benchmark import load_baselines, run_benchmark
from molgen.metrics.fcd import encode_for_chemnet
from molgen.viz import can_draw_molecules

DATA = Path(__file__).parent / "data"
MOSES_KEYS = (
    "valid", "unique@1000", "unique@10000", "FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test",
    "IntDiv", "IntDiv2", "Filters", "Novelty", "logP", "SA", "QED", "weight",
)  # fmt: skip


def _assert_agrees(ours: dict, expected: dict) -> None:
    for key in MOSES_KEYS:
        if key == "FCD/Test":
            assert ours[key] == pytest.approx(expected[key], rel=0.02), key
        else:
            assert round(ours[key], 3) == pytest.approx(round(expected[key], 3), abs=1e-3), key


def _reference_case(name: str, generated: str, reference: str, tmp_path: Path) -> tuple[dict, dict]:
    expected = json.loads((DATA / f"moses_reference_{name}.json").read_text())["metrics"]
    train = read_smiles_file(DATA / "metrics_train_3k.smi")
    ours = compute_metrics(
        DATA / generated, reference=DATA / reference, train=train, n_jobs=1, cache_dir=tmp_path
    )
    return ours, expected


@pytest.mark.filterwarnings("ignore:unique@")
def test_agrees_with_moses_on_tiny_fixed_set(tmp_path):
    ours, expected = _reference_case(
        "tiny", "metrics_generated_150.smi", "metrics_reference_300.smi", tmp_path
    )
    _assert_agrees(ours, expected)
    assert ours["n_generated"] == 150
    assert ours["fcd_sample_size"] == ours["n_valid"] == round(150 * expected["valid"])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:unique@")
def test_agrees_with_moses_on_small_fixed_set(tmp_path):
    ours, expected = _reference_case(
        "small", "metrics_generated_1k.smi", "metrics_reference_2k.smi", tmp_path
    )
    _assert_agrees(ours, expected)


def test_garbage_is_invalid_and_duplicates_count(tmp_path):
    generated = ["CCO", "CCO", "OCC", "c1ccccc1", "C1CC", "", "garbage((", None, "CC(=O)O"]
    metrics = compute_metrics(
        generated, reference=["CCN", "c1ccncc1", "CC(=O)N"], n_jobs=1, cache_dir=tmp_path
    )
    assert metrics["n_generated"] == 9
    assert metrics["n_valid"] == 5
    assert metrics["valid"] == pytest.approx(5 / 9)
    # 5 valid molecules, 3 distinct (OCC is ethanol again).
    assert metrics["unique@1000"] == pytest.approx(3 / 5)
    assert "Novelty" not in metrics


def test_empty_or_all_invalid_generated_set_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="empty"):
        compute_metrics([], reference=["CCO", "CCN"], cache_dir=tmp_path)
    with pytest.raises(DataError, match="none of the 2"):
        compute_metrics(["xx", "C1CC"], reference=["CCO", "CCN"], cache_dir=tmp_path)


def test_novelty_compares_canonical_forms(tmp_path):
    metrics = compute_metrics(
        ["OCC", "CCN", "CCCl"],
        reference=["CCO", "CCN"],
        train=["CCO", "CCN"],
        n_jobs=1,
        cache_dir=tmp_path,
    )
    assert metrics["Novelty"] == pytest.approx(1 / 3)


def test_identical_sets_score_perfectly(tmp_path):
    smiles = read_smiles_file(DATA / "metrics_reference_300.smi")[:120]
    metrics = compute_metrics(smiles, reference=smiles, n_jobs=1, cache_dir=tmp_path)
    assert metrics["SNN/Test"] == pytest.approx(1.0)
    assert metrics["Frag/Test"] == pytest.approx(1.0)
    assert metrics["KL"] == pytest.approx(1.0)
    assert metrics["FCD/Test"] == pytest.approx(0.0, abs=1e-4)
    for name in ("logP", "SA", "QED", "weight"):
        assert metrics[name] == pytest.approx(0.0, abs=1e-12)


def test_reference_statistics_are_cached_as_plain_npz(tmp_path, monkeypatch):
    reference = DATA / "metrics_reference_300.smi"
    first = reference_statistics(reference, n_jobs=1, cache_dir=tmp_path)
    cached = list((tmp_path / "metrics").glob("*.npz"))
    assert len(cached) == 1
    np.load(cached[0], allow_pickle=False).close()

    def fail(*args, **kwargs):
        raise AssertionError("recomputed despite the cache")

    monkeypatch.setattr(reference_module, "summarize", fail)
    second = reference_statistics(reference, n_jobs=1, cache_dir=tmp_path)
    assert second.n_molecules == first.n_molecules == 300
    np.testing.assert_array_equal(second.fingerprints, first.fingerprints)
    np.testing.assert_allclose(second.fcd_sigma, first.fcd_sigma)
    assert second.scaffold_keys.tolist() == first.scaffold_keys.tolist()


def test_missing_reference_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="neither a file"):
        compute_metrics(["CCO"], reference=tmp_path / "nope.smi", cache_dir=tmp_path)


def _brute_tanimoto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = a.astype(float) @ b.T.astype(float)
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    with np.errstate(invalid="ignore"):
        sim = inter / union
    return np.where(union == 0, 1.0, sim)


def _random_bits(rng: np.random.Generator, n: int, bits: int, density: float) -> np.ndarray:
    out = (rng.random((n, bits)) < density).astype(np.uint8)
    out[0] = 0  # an empty fingerprint: MOSES counts two of them as identical
    return out


@pytest.mark.parametrize("block", [8192, 7])
def test_nearest_similarity_matches_brute_force(block, monkeypatch):
    # Block 7 splits the reference's popcount runs across blocks of the products.
    monkeypatch.setattr(similarity_module, "_REFERENCE_BLOCK", block)
    rng = np.random.default_rng(1)
    query, ref = _random_bits(rng, 300, 64, 0.2), _random_bits(rng, 9000 if block > 7 else 400, 64, 0.2)
    got = nearest_similarity(np.packbits(query, axis=1), np.packbits(ref, axis=1), n_bits=64)
    want = _brute_tanimoto(query, ref).max(1)
    np.testing.assert_allclose(got, want, atol=1e-6)
    # Empty query rows are identical to the empty reference row (MOSES).
    assert got[0] == 1.0 and (want < 1).sum() > 250


def test_nearest_similarity_exclude_self_ignores_the_diagonal():
    rng = np.random.default_rng(2)
    bits = (rng.random((50, 32)) < 0.3).astype(np.uint8)
    sim = _brute_tanimoto(bits, bits)
    np.fill_diagonal(sim, 0.0)
    packed = np.packbits(bits, axis=1)
    np.testing.assert_allclose(
        nearest_similarity(packed, packed, 32, exclude_self=True), sim.max(1), atol=1e-6
    )


def test_internal_diversity_with_multiplicities_matches_expanded_set():
    rng = np.random.default_rng(3)
    bits = _random_bits(rng, 40, 64, 0.25)
    bits[1] = 0  # two empty fingerprints
    counts = rng.integers(1, 4, size=40)
    expanded = np.repeat(bits, counts, axis=0)
    sim = _brute_tanimoto(expanded, expanded)
    want1 = 1 - sim.mean()
    want2 = 1 - np.sqrt((sim**2).mean(1)).mean()
    got1, got2 = internal_diversity(np.packbits(bits, axis=1), counts, n_bits=64)
    assert got1 == pytest.approx(want1, abs=1e-6)
    assert got2 == pytest.approx(want2, abs=1e-6)


def test_estimated_internal_diversity_converges_to_every_pair_within_its_standard_error():
    rng = np.random.default_rng(5)
    bits = _random_bits(rng, 60, 64, 0.2)
    bits[7] = 0  # a second empty fingerprint
    counts = rng.integers(1, 6, size=60)
    counts[[0, 7]] = 30
    packed = np.packbits(bits, axis=1)
    exact1, exact2 = internal_diversity(packed, counts, n_bits=64)
    big = estimated_internal_diversity(packed, counts, 64, rows=200_000, seed=1)
    # The empty rows contribute similarity 1 to each other: without that the estimate is off by ~0.05.
    assert abs(big.intdiv1 - exact1) < 4 * big.stderr1 and big.stderr1 < 1e-3
    assert abs(big.intdiv2 - exact2) < 4 * big.stderr2 and big.stderr2 < 1e-3
    small = [estimated_internal_diversity(packed, counts, 64, rows=50, seed=s) for s in range(40)]
    # The standard error says how far single estimates stray: their spread matches it.
    spread = np.std([e.intdiv1 for e in small], ddof=1)
    assert 0.5 < spread / np.mean([e.stderr1 for e in small]) < 2.0
    assert estimated_internal_diversity(packed, counts, 64, rows=50, seed=3) == small[3]
    with pytest.raises(ValueError, match="at least 2"):
        estimated_internal_diversity(packed, counts, 64, rows=1)


@pytest.mark.filterwarnings("ignore:unique@")
def test_intdiv_is_estimated_only_above_the_exact_limit(tmp_path):
    smiles = read_smiles_file(DATA / "metrics_reference_300.smi")[:80]
    reference = smiles[40:]
    exact = compute_metrics(smiles, reference=reference, n_jobs=1, cache_dir=tmp_path)
    assert "intdiv_rows" not in exact and "IntDiv_stderr" not in exact
    assert compute_metrics(smiles, reference=reference, n_jobs=1, cache_dir=tmp_path, intdiv_exact_max=80) == exact
    estimated = compute_metrics(smiles, reference=reference, n_jobs=1, cache_dir=tmp_path, intdiv_exact_max=79)
    assert estimated["intdiv_rows"] == 20_000
    for key in ("IntDiv", "IntDiv2"):
        assert 0 < estimated[f"{key}_stderr"] < 0.002
        assert abs(estimated[key] - exact[key]) < 4 * estimated[f"{key}_stderr"]
    assert {k: v for k, v in estimated.items() if "ntDiv" not in k and k != "intdiv_rows"} == {
        k: v for k, v in exact.items() if "ntDiv" not in k
    }


def test_similarity_falls_back_to_float32_for_dense_fingerprints():
    rng = np.random.default_rng(4)
    bits = (rng.random((20, 1024)) < 0.6).astype(np.uint8)  # ~600 on-bits: bfloat16 would round
    packed = np.packbits(bits, axis=1)
    sim = _brute_tanimoto(bits[:10], bits[10:])
    np.testing.assert_allclose(
        nearest_similarity(packed[:10], packed[10:], 1024), sim.max(1), atol=1e-6
    )


def test_chemnet_encoding_follows_fcd_torch():
    codes = encode_for_chemnet("ClC(Br)[Si]")
    # Cl C ( Br ) [ Si ] then the end symbol "." (index 34), padding -1.
    assert codes[:9].tolist() == [5, 0, 13, 8, 14, 26, 11, 27, 34]
    assert (codes[9:] == -1).all()
    # fcd_torch reads only up to the first "."; "[Na]" is read as [ N a ] with
    # "a" unknown ("X", 33), as fcd_torch does.
    assert encode_for_chemnet("CC.O")[:3].tolist() == [0, 0, 34]
    assert encode_for_chemnet("[Na]")[:5].tolist() == [26, 1, 33, 27, 34]
    assert encode_for_chemnet("C" * 400)[349] == 34


def test_frechet_distance_matches_sqrtm_formula():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(200, 8)), rng.normal(loc=0.5, size=(300, 8)) @ rng.normal(size=(8, 8))
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    want = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(root)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)


def test_read_smiles_file_keeps_every_sample(tmp_path):
    path = tmp_path / "gen.smi"
    path.write_text("SMILES\nCCO mol1\n\nnot_a_smiles\nc1ccccc1\n")
    assert read_smiles_file(path) == ["CCO", "", "not_a_smiles", "c1ccccc1"]
    csv_path = tmp_path / "gen.csv"
    csv_path.write_text("id,SMILES\n1,CCO\n2,\n")
    assert read_smiles_file(csv_path) == ["CCO", ""]


def test_baselines_use_testsf_fcd_for_scaffold_reference():
    test_rows = {row["model"]: row for row in load_baselines("Test")}
    sf_rows = {row["model"]: row for row in load_baselines("TestSF")}
    assert test_rows["CharRNN"]["FCD"] == pytest.approx(0.073)
    assert sf_rows["CharRNN"]["FCD"] == pytest.approx(0.520)
    assert math.isnan(sf_rows["CharRNN"]["SNN"])
    assert test_rows["VAE"]["unique@10000"] == pytest.approx(0.998)


@pytest.mark.filterwarnings("ignore:unique@")
def test_run_benchmark_writes_report(tmp_path):
    generated = read_smiles_file(DATA / "metrics_generated_150.smi")
    out = tmp_path / "report"
    report = run_benchmark(
        generated,
        reference=DATA / "metrics_reference_300.smi",
        out_dir=out,
        n_jobs=1,
        cache_dir=tmp_path,
    )
    pictures = {"properties.png", "molecules.png"} if can_draw_molecules() else {"properties.png"}
    assert {p.name for p in out.iterdir()} == {"metrics.json", "metrics.md", *pictures}
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["metrics"]["n_generated"] == 150
    assert saved["metrics"]["valid"] == pytest.approx(report["metrics"]["valid"])
    table = (out / "metrics.md").read_text()
    assert (
        "| **molgen** |" in table and "CharRNN" not in table
    )  # no baselines for a custom reference
    for name in pictures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filter_screen_changes_no_result():
    from rdkit import Chem

    from molgen.metrics._features import _filter_patterns, _passes_filters

    patterns, _ = _filter_patterns()
    rejected = 0
    smiles = read_smiles_file(DATA / "metrics_generated_150.smi") + [
        "Oc1ccc(N=Nc2ccccc2)cc1",  # azo (PAINS)
        "S=C1SC(=Cc2ccccc2)C(=O)N1",  # ene-rhodanine (PAINS)
        "Cc1ccc(O)c(O)c1",  # catechol (PAINS)
        "O=C1C=CC(=O)C=C1",  # quinone
    ]
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is None:
            continue
        with_h = Chem.AddHs(mol)
        unscreened = not any(with_h.HasSubstructMatch(p) for p in patterns)
        charged_or_odd = any(
            a.GetFormalCharge() or a.GetSymbol() not in "C N S O F Cl Br H".split()
            for a in mol.GetAtoms()
        )
        big_ring = any(len(r) >= 8 for r in mol.GetRingInfo().AtomRings())
        assert _passes_filters(mol) == (unscreened and not charged_or_odd and not big_ring), s
        rejected += not unscreened
    assert rejected >= 4


def test_named_references_resolve_in_the_cache_and_name_the_keys(tmp_path):
    smiles = _fake_moses_splits(tmp_path, 80)
    generated = smiles[:30]
    test = compute_metrics(generated, reference="moses-test", n_jobs=1, cache_dir=tmp_path)
    scaffolds = compute_metrics(generated, reference="moses-test-scaffolds", n_jobs=1, cache_dir=tmp_path)
    assert test["SNN/Test"] == pytest.approx(1.0)  # every generated molecule is in "test"
    assert scaffolds["SNN/TestSF"] < 1.0
    assert test["fcd_reference_size"] == scaffolds["fcd_reference_size"] == 40
    assert len(list((tmp_path / "metrics").glob("*.npz"))) == 2


def test_one_pass_over_several_references_equals_separate_runs(tmp_path):
    from molgen.metrics.compute import evaluate_many

    smiles = _fake_moses_splits(tmp_path, 90)
    generated = smiles[20:70] + ["not a smiles", smiles[20]]
    both = evaluate_many(
        generated, ["moses-test", "moses-test-scaffolds"], n_jobs=1, cache_dir=tmp_path
    )
    for evaluation, name in zip(both, ("moses-test", "moses-test-scaffolds"), strict=True):
        alone = compute_metrics(generated, reference=name, n_jobs=1, cache_dir=tmp_path)
        assert list(evaluation.metrics) == list(alone)  # same keys, same order
        for key, value in alone.items():
            assert evaluation.metrics[key] == pytest.approx(value, nan_ok=True), key
    assert both[0].metrics["SNN/Test"] != pytest.approx(both[1].metrics["SNN/TestSF"])


@pytest.mark.filterwarnings("ignore:unique@")
def test_run_benchmark_with_two_references_merges_keys_and_tables(tmp_path):
    smiles = _fake_moses_splits(tmp_path, 60)
    report = run_benchmark(
        smiles[10:40],
        references=["moses-test", "moses-test-scaffolds"],
        out_dir=tmp_path / "report",
        n_jobs=1,
        cache_dir=tmp_path,
    )
    assert {"FCD/Test", "FCD/TestSF", "SNN/Test", "SNN/TestSF", "logP/TestSF", "KL/TestSF"} <= set(report["metrics"])
    # Unsuffixed reference-dependent metrics belong to the first reference, not the last.
    alone = compute_metrics(smiles[10:40], reference="moses-test", n_jobs=1, cache_dir=tmp_path)
    for key in ("logP", "SA", "QED", "weight", "KL", "fcd_reference_size"):
        assert report["metrics"][key] == pytest.approx(alone[key]), key
    assert report["metrics"]["logP/TestSF"] != pytest.approx(alone["logP"])
    assert report["reference"] == ["moses-test", "moses-test-scaffolds"]
    table = (tmp_path / "report" / "metrics.md").read_text()
    assert "FCD/Test |" in table and "FCD/TestSF" in table and table.count("CharRNN") == 2
    with pytest.raises(ConfigError, match="same metric names"):
        run_benchmark(smiles[:5], references=[DATA / "metrics_reference_300.smi"] * 2, n_jobs=1, cache_dir=tmp_path)


def _fake_moses_splits(cache: Path, n: int) -> list[str]:
    """A MOSES cache folder whose 'test' and 'test_scaffolds' are the two halves of n molecules."""
    moses_dir = cache / "moses"
    moses_dir.mkdir()
    smiles = read_smiles_file(DATA / "metrics_reference_300.smi")[:n]
    for name, part in (("test", smiles[: n // 2]), ("test_scaffolds", smiles[n // 2 :])):
        with gzip.open(moses_dir / f"{name}.csv.gz", "wt") as handle:
            handle.write("SMILES\n" + "\n".join(part) + "\n")
    return smiles


def test_chemnet_activations_do_not_depend_on_the_batch_size():
    from molgen.metrics.fcd import chemnet_activations

    smiles = read_smiles_file(DATA / "metrics_reference_300.smi")[:70]
    # The CPU default (32) splits these into three batches, one of them partial.
    default = chemnet_activations(smiles)
    assert default.shape == (70, 512) and np.isfinite(default).all()
    np.testing.assert_array_equal(default, chemnet_activations(smiles, batch_size=512))
    np.testing.assert_array_equal(default, chemnet_activations(smiles, batch_size=7))


def test_chemnet_statistics_in_blocks_equal_the_moments_of_all_activations():
    from molgen.metrics.fcd import chemnet_activations, chemnet_statistics

    smiles = read_smiles_file(DATA / "metrics_reference_300.smi")[:70]
    counts = np.arange(1, 71) % 4 + 1
    values = chemnet_activations(smiles).astype(np.float64)
    mu, sigma = chemnet_statistics(smiles, counts, block=16)  # 5 blocks, the last partial
    np.testing.assert_allclose(mu, np.average(values, axis=0, weights=counts), rtol=0, atol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(values, rowvar=False, fweights=counts), rtol=0, atol=1e-12)
    unweighted = chemnet_statistics(smiles, block=32)
    np.testing.assert_allclose(unweighted[1], np.cov(values, rowvar=False), rtol=0, atol=1e-12)


def test_gaussian_moments_stay_accurate_far_from_the_origin():
    from molgen.metrics.fcd import GaussianMoments

    rng = np.random.default_rng(0)
    values = 1e6 + rng.normal(size=(1000, 3))  # sums of squares would lose every digit of the spread
    counts = rng.integers(1, 5, size=1000)
    moments = GaussianMoments(3)
    for start in range(0, 1000, 64):
        moments.add(values[start : start + 64], counts[start : start + 64])
    moments.add(values[:0], counts[:0])  # an empty block changes nothing
    assert moments.n == counts.sum()
    np.testing.assert_allclose(moments.mean, np.average(values, axis=0, weights=counts), rtol=1e-14)
    np.testing.assert_allclose(moments.covariance(), np.cov(values, rowvar=False, fweights=counts), rtol=1e-9)
    assert np.isnan(GaussianMoments(2).covariance()).all()


def test_a_failing_feature_pass_stops_chemnet_beside_it(monkeypatch):
    # ChemNet runs in a thread beside the RDKit features; when they fail, their error comes out and the
    # thread stops at its next block instead of finishing the set first.
    seen = {}

    def broken(smiles):
        raise ValueError("feature pass failed")

    def chemnet(canonical, counts, device, batch_size, progress):
        seen["stop"] = progress.stop
        assert progress.stop.wait(30)  # set by the failing pass
        progress.advance(1)  # raises _Stopped: the thread ends here

    monkeypatch.setattr(reference_module._features, "featurize", broken)
    monkeypatch.setattr(reference_module, "_chemnet_of_canonical", chemnet)
    smiles = ["CCO", "CCN", "c1ccccc1"]
    with pytest.raises(ValueError, match="feature pass failed"):
        reference_module.summarize(smiles, smiles, "first", n_jobs=1)
    assert seen["stop"].is_set()
    handle = reference_module._Stoppable(reference_module.ProgressHandle())
    handle.advance(3)  # not stopped: passes through
    handle.stop.set()
    with pytest.raises(reference_module._Stopped):
        handle.advance(0)
