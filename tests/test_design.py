"""Design workflows: the scaffold-memory diversity filter, keeping a core, staying near a lead."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from molgen.errors import ConfigError
from molgen.optimize import optimize
from molgen.optimize.diversity import DiversityConfig, ScaffoldMemory, murcko_scaffold

BO = dict(dims=4, n_init=8, batch_size=6, n_candidates=256, fit_iters=15, projection_molecules=300, finetune_every=0)


def test_scaffolds():
    assert murcko_scaffold("CCc1ccccc1") == "c1ccccc1"
    assert murcko_scaffold("CCOC(=O)c1ccc(C2CC2)cc1") == "c1ccc(C2CC2)cc1"
    assert murcko_scaffold("CCO") == ""
    assert murcko_scaffold("Cc1ccncc1", generic=True) == murcko_scaffold("Cc1ccccc1", generic=True) == "C1CCCCC1"


def test_memory_zeroes_or_penalises_after_k_hits():
    memory = ScaffoldMemory(DiversityConfig(bucket_size=2))
    scores = [memory.filter(s, 0.9) for s in ("Cc1ccccc1", "CCc1ccccc1", "CCCc1ccccc1", "C1CCCCC1", "OCCc1ccccc1")]
    assert scores == [0.9, 0.9, 0.0, 0.9, 0.0]
    assert memory.counts == {"c1ccccc1": 4, "C1CCCCC1": 1}
    soft = ScaffoldMemory(DiversityConfig(bucket_size=1, penalty=0.5, min_score=0.5))
    assert [soft.filter(s, v) for s, v in (("Cc1ccccc1", 0.2), ("CCc1ccccc1", 0.8), ("CCCc1ccccc1", 0.8))] == [0.2, 0.8, 0.4]
    for bad in ({"bucket_size": 0}, {"penalty": 1.0}, {"bucket": 3}):
        with pytest.raises(ConfigError):
            DiversityConfig.from_dict(bad)


def test_optimize_with_the_filter_ranks_by_filtered_score(default_vae, tmp_path):
    # Penalty 0 (the default): a molecule of a full scaffold is known to score zero, so it costs no call.
    result = optimize("qed", model=default_vae, method="bo", budget=20, options=BO, diversity=1, out_dir=tmp_path)
    frame = pd.read_csv(tmp_path / "molecules.csv")
    scaffolds = [murcko_scaffold(s) for s in frame.sort_values("call").smiles]
    assert len(set(scaffolds)) == len(scaffolds) == 20  # every call went to a new scaffold
    assert frame.objective.tolist() == pytest.approx(frame.objective_unfiltered.tolist())
    log = [json.loads(line) for line in (tmp_path / "oracle_log.jsonl").read_text().splitlines()]
    skipped = [r for r in log if r["status"] == "filtered" and "diversity filter" in (r["error"] or "")]
    assert skipped and all(r["call"] is None and murcko_scaffold(r["smiles"]) in set(scaffolds) for r in skipped)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["diversity_filter"]["bucket_size"] == 1 and summary["diversity_filter"]["scaffolds"] == 20
    assert result.oracle.calls == 20


def test_filter_that_scores_full_scaffolds_still_zeroes_them(untrained_tiny_vae, tmp_path):
    config = {"bucket_size": 1, "skip_full": False}  # REINVENT's way: every molecule is scored, repeats score 0
    result = optimize("qed", model=untrained_tiny_vae, method="bo", budget=20, options=BO, diversity=config, out_dir=tmp_path)
    frame = pd.read_csv(tmp_path / "molecules.csv")
    seen, expected = set(), []
    by_call = frame.sort_values("call")
    for smi, raw in zip(by_call.smiles, by_call.objective_unfiltered):
        scaffold = murcko_scaffold(smi)
        expected.append(raw if scaffold not in seen else 0.0)
        seen.add(scaffold)
    assert by_call.objective.tolist() == pytest.approx(expected)
    assert len(seen) < 20  # this model writes mostly acyclic molecules (one empty scaffold): most calls scored zero
    positive = frame[frame.objective > 0]
    assert len(set(murcko_scaffold(s) for s in positive.smiles)) == len(positive)  # one molecule per scaffold scores
    assert result.oracle.calls == 20


# -- keep a core ----------------------------------------------------------------

from molgen.generate.substructure import CoreFilter, find_core_seeds, sample_with_core  # noqa: E402


def test_core_filter_and_bad_smarts():
    core = CoreFilter(["c1ccc2[nH]ccc2c1", "C(=O)O"])
    assert core.violation("OC(=O)Cc1c[nH]c2ccccc12") is None
    assert core.violation("Cc1c[nH]c2ccccc12") == "lacks core C(=O)O"
    assert core.violation("c1ccccc1") == "lacks core c1ccc2[nH]ccc2c1, C(=O)O"
    with pytest.raises(ConfigError, match="not valid SMARTS"):
        CoreFilter(["c1ccc(("])
    seeds = find_core_seeds(CoreFilter(["c1ccc2[nH]ccc2c1"]), ["CCO", "Cc1c[nH]c2ccccc12", "c1ccc2[nH]ccc2c1"])
    assert seeds == ["Cc1c[nH]c2ccccc12", "c1ccc2[nH]ccc2c1"]


def test_sample_with_core_keeps_only_matches_and_counts_decodes(untrained_tiny_vae):
    core = ["[OX2H]"]  # a hydroxyl: common enough for the untrained model
    mols, stats = sample_with_core(untrained_tiny_vae, core, 30, seed=0, batch_size=64)
    assert len(mols) == 30 == stats.kept and len(set(mols)) == 30
    assert all(CoreFilter(core).matches(s) for s in mols)
    assert stats.seeds > 0 and stats.decoded >= stats.valid >= stats.matched >= 30
    assert stats.decodes_per_kept == pytest.approx(stats.decoded / 30)
    again, _ = sample_with_core(untrained_tiny_vae, core, 30, seed=0, batch_size=64)
    assert again == mols
    with pytest.warns(UserWarning, match="found 0 of 5"):
        none, stats = sample_with_core(untrained_tiny_vae, ["[Xe]"], 5, max_decodes=64, use_training_seeds=False)
    assert none == [] and stats.fallback_prior


def test_optimize_with_a_core_scores_only_molecules_that_have_it(untrained_tiny_vae, tmp_path):
    result = optimize("qed", model=untrained_tiny_vae, method="bo", budget=10, options=BO, substructure=["[OX2H]"], out_dir=tmp_path)
    frame = pd.read_csv(tmp_path / "molecules.csv")
    assert len(frame) == 10 and all(CoreFilter(["[OX2H]"]).matches(s) for s in frame.smiles)
    log = [json.loads(line) for line in (tmp_path / "oracle_log.jsonl").read_text().splitlines()]
    lacking = [r for r in log if r["status"] == "infeasible"]
    assert all(r["call"] is None and r["error"] == "lacks core [OX2H]" for r in lacking)
    assert result.summary["substructure"]["seed_molecules"] > 0


def test_gradient_with_a_core_restarts_from_its_best_molecules_until_the_budget_is_spent(untrained_tiny_vae):
    # The core's seed molecules are starting points, not leads: rounds of restarts (half from the best molecules
    # found) run until the budget is spent, instead of a lead search around every seed or one fixed round.
    options = {"predictor_train_size": 300, "steps": 4, "decode_every": 2, "decode_temperature": 1.0, "predictor": {"epochs": 5}}
    result = optimize("qed", model=untrained_tiny_vae, method="gradient", budget=30, substructure=["[OX2H]"], options=options, seed=0)
    facts = result.summary["method_facts"]
    assert result.oracle.calls == 30 and result.summary["stop"]["rule"] == "budget spent"
    assert all(CoreFilter(["[OX2H]"]).matches(s) for s in result.frame.smiles)
    assert facts["rounds"] >= 2 and facts["round_log"][1]["elites"] >= 1
    assert not result.oracle.starts  # no leads: nothing is measured by similarity to a seed


def test_cli_sample_with_a_core(untrained_tiny_vae, tmp_path):
    from typer.testing import CliRunner

    from molgen.cli import app

    out = tmp_path / "core.csv"
    args = ["sample", "-n", "25", "--substructure", "[OX2H]", "--model", untrained_tiny_vae.meta["path"], "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == 25 and frame.smiles.is_unique and all(CoreFilter(["[OX2H]"]).matches(s) for s in frame.smiles)
    assert "decodes per molecule" in result.output
    bad = CliRunner().invoke(app, ["sample", "-n", "5", "--substructure", "c1cc((", "--model", untrained_tiny_vae.meta["path"], "-o", str(out)])
    assert isinstance(bad.exception, ConfigError) and "not valid SMARTS" in str(bad.exception)


# -- stay near a lead -------------------------------------------------------------

from molgen.generate.near import parse_similarity_range, sample_near  # noqa: E402

LEAD = "CC(=O)Nc1ccc(O)cc1"


def test_similarity_ranges():
    assert parse_similarity_range("0.4..0.7") == (0.4, 0.7) and parse_similarity_range("0.5") == (0.5, 1.0)
    for bad in ("0.8..0.2", "x", "0.2..1.5"):
        with pytest.raises(ConfigError):
            parse_similarity_range(bad)


@pytest.fixture(scope="module")
def default_vae():
    from molgen.vae import MoleculeVAE

    return MoleculeVAE.load(None, device="cpu")


def test_sample_near_sorts_by_similarity_and_keeps_the_range(default_vae):
    from molgen import chem

    refs = [LEAD, "NCCc1ccccc1"]
    frame = sample_near(default_vae, refs, n=12, similarity=(0.25, 0.8), seed=0, batch_size=64, max_decodes=1280)
    assert len(frame) == 12 and frame.smiles.is_unique and not set(refs) & set(frame.smiles)
    assert frame.similarity.is_monotonic_decreasing and frame.similarity.between(0.25, 0.8).all()
    for row in frame.itertuples():  # the column is the similarity to the nearest reference
        sims = [chem.tanimoto(chem.morgan_fingerprint(row.smiles), chem.morgan_fingerprint(r)) for r in refs]
        assert row.similarity == pytest.approx(max(sims)) and row.reference == refs[int(sims[1] > sims[0])]
    close = sample_near(default_vae, [LEAD], n=8, radius=0.25, seed=0, batch_size=64, max_decodes=640)
    far = sample_near(default_vae, [LEAD], n=8, radius=2.0, seed=0, batch_size=64, max_decodes=640)
    assert close.similarity.mean() > far.similarity.mean() + 0.05


def test_optimize_min_similarity_is_a_floor_to_the_nearest_lead(default_vae, tmp_path):
    leads = [LEAD, "c1ccccc1CCN"]
    options = dict(n_init=8, batch_size=4, n_candidates=256, fit_iters=15, projection_molecules=500, finetune_every=0)
    result = optimize("qed", model=default_vae, method="bo", budget=8, options=options, start=leads, min_similarity=0.3, out_dir=tmp_path)
    frame = pd.read_csv(tmp_path / "molecules.csv")
    assert (frame.similarity_to_start >= 0.3).all()
    assert set(frame.start) <= {LEAD, "NCCc1ccccc1"} and result.oracle.counts["infeasible"] > 0
    assert result.oracle.calls == 8
