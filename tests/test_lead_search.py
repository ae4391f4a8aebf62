"""Lead optimization with the gradient method: exploring near a start molecule, stopping rules, advice."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from molgen import chem
from molgen.errors import ConfigError
from molgen.optimize import (
    GradientConfig,
    PredictorTrainingConfig,
    fit_predictor,
    optimize,
)
from molgen.optimize.advice import run_advice
from molgen.optimize.explore import STOP_BUDGET, STOP_STALLED

LEAD = "CCCCCOCCCCC"
FAST = dict(n_starts=16, steps=4, decode_every=2)


class EtherVAE:
    """z -> an alkyl ether C_a-O-C_b, branched when z2 > 0.5, with an amine end when z3 > 0.5.

    A stand-in for a trained model near a lead: greedy decodes of every z near the
    lead's encoding give the same one or two molecules (its decoding basin), while
    sampled decodes jitter z by the temperature and reach a few hundred molecules.
    """

    device = torch.device("cpu")
    meta = {"path": "ether-toy"}

    def __init__(self) -> None:
        self.config = SimpleNamespace(latent_dim=4)

    def decode(self, z, options=None, seed=0, **kwargs):
        z = np.asarray(z, dtype=float)
        temperature = options.temperature if options is not None and options.strategy == "sample" else 0.0
        z = z + np.random.default_rng(seed).normal(size=z.shape) * temperature
        out = []
        for a, b, branch, amine in z:
            a, b = int(np.clip(round(2 * a + 5), 1, 12)), int(np.clip(round(2 * b + 5), 1, 12))
            smiles = "C" * a + "O" + ("C(C)" + "C" * (b - 1) if branch > 0.5 else "C" * b)
            out.append(chem.canonical_smiles(smiles[:-1] + "N" if amine > 0.5 else smiles))
        return out

    def encode(self, smiles, **kwargs):
        z = np.zeros((len(smiles), 4), dtype=np.float32)
        for i, s in enumerate(smiles):
            left, _, right = s.partition("O")
            z[i, :2] = (len(left) - 5) / 2, (len(right) - 5) / 2
        return z, list(range(len(smiles)))


@pytest.fixture(scope="module")
def vae():
    return EtherVAE()


@pytest.fixture(scope="module")
def predictor(vae):
    z = np.random.default_rng(0).normal(size=(400, 4)).astype(np.float32) * 1.5
    smiles = vae.decode(z)
    keep = [i for i, s in enumerate(smiles) if s]
    y = chem.compute_properties([smiles[i] for i in keep], ["logp"])[["logp"]].to_numpy()
    return fit_predictor(z[keep], y, ["logp"], PredictorTrainingConfig(epochs=40, model={"hidden": 32, "members": 2}))


def _lead_run(vae, predictor, budget=60, min_similarity=0.4, **options):
    return optimize("logp", vae, budget=budget, start=LEAD, min_similarity=min_similarity, predictor=predictor,
                    options={**FAST, **options}, seed=0)  # fmt: skip


def test_lead_search_spends_the_budget_on_distinct_feasible_molecules(vae, predictor):
    result = _lead_run(vae, predictor)
    oracle, summary = result.oracle, result.summary
    # Every oracle call is a new molecule within the similarity floor; the old fixed rounds found a handful.
    assert oracle.calls == 60 and summary["stop"]["rule"] == STOP_BUDGET and summary["advice"] is None
    assert (result.frame.similarity_to_start >= 0.4).all() and result.frame.smiles.is_unique
    fixed = _lead_run(vae, predictor, explore="off")
    assert fixed.oracle.calls <= 5 and fixed.summary["stop"]["rule"] == "rounds finished"
    assert "--rounds" in fixed.summary["advice"] or "explore" in fixed.summary["advice"]
    log = summary["method_facts"]["round_log"]
    assert sum(r["new_calls"] for r in log) == 60 and all(r["radius"] > 0 and r["noise"] > 0 for r in log)


def test_same_seed_same_molecules(vae, predictor):
    a, b = _lead_run(vae, predictor, budget=30), _lead_run(vae, predictor, budget=30)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.summary["method_facts"]["round_log"] == b.summary["method_facts"]["round_log"]


def test_stalled_search_names_its_stopping_rule_and_what_to_change(vae, predictor):
    # Only the lead itself is within similarity 1.0: after it, no round can find anything new and feasible.
    result = _lead_run(vae, predictor, budget=50, min_similarity=1.0, explore_patience=2)
    summary = result.summary
    assert result.oracle.calls <= 1 and summary["stop"]["rule"] == STOP_STALLED
    assert summary["method_facts"]["rounds"] >= 2 and "2 rounds in a row" in summary["stop"]["detail"]
    assert summary["advice"].startswith(f"spent {result.oracle.calls} of 50 oracle calls (stalled)")
    assert "--min-similarity (now 1)" in summary["advice"]


def test_summary_names_the_alerts_its_lead_carries(vae, predictor):
    # Molecules found from this lead may keep its MCF10 alert (molgen.optimize.sanity); the summary says so.
    thio = "CCC1(CC)C(=O)NC(=NNC(N)=S)NC1=O"
    result = optimize("logp", vae, budget=3, start=thio, min_similarity=0.0, predictor=predictor, options={**FAST, "explore_max_rounds": 1}, seed=0)
    assert list(result.summary["sanity_filter"]["lead_alerts"].values()) == [["MCF10"]]
    assert "lead_alerts" not in _lead_run(vae, predictor, budget=3).summary["sanity_filter"]


def test_advice_line():
    assert run_advice(200, 150, 10, 400, STOP_BUDGET, "gradient", True) is None  # most of the budget, few repeats
    # A lead whose neighbours carry its structural alert: the line names the sanity filter.
    stalled = run_advice(200, 0, 81, 1900, "stalled", "gradient", True, 0.6, filtered=106)
    assert "lower --min-similarity (now 0.6)" in stalled and "sanity filter dropped 106 new molecules (--no-sanity-filter" in stalled
    assert "sanity filter" not in run_advice(200, 83, 15000, 37000, "stalled", "gradient", True, 0.6, filtered=16)
    line = run_advice(200, 200, 5000, 6000, STOP_BUDGET, "gradient", True)  # budget spent, but mostly on decoding repeats
    assert line.startswith("83% of 6,000 decodes repeated molecules already scored: ") and "explore_min_novelty" in line
    line = run_advice(1000, 2, 10_863, 11_000, "rounds finished", "gradient", False)
    assert line.startswith("spent 2 of 1,000 oracle calls (rounds finished): raise --rounds")
    line = run_advice(None, 900, 9_000, 10_000, "rounds finished", "gradient", False)
    assert line.startswith("90% of 10,000 decodes repeated") and "decode_temperature" in line
    assert "max_stalled" in run_advice(100, 10, 0, 50, "stalled", "bo", False)
    assert run_advice(1000, 2, 10_863, 11_000, "stalled", "gradient", True, interrupted=True) is None


def test_explore_options_are_checked():
    with pytest.raises(ConfigError, match="explore"):
        GradientConfig(explore="maybe")
    with pytest.raises(ConfigError, match="explore_growth"):
        GradientConfig(explore_growth=0.5)
    with pytest.raises(ConfigError, match="explore_patience"):
        GradientConfig(explore_patience=0)


def test_explore_on_needs_a_start(vae, predictor):
    with pytest.raises(ConfigError, match="start molecules"):
        optimize("logp", vae, budget=10, predictor=predictor, options={**FAST, "explore": "on"})


@pytest.fixture(scope="module")
def shipped_vae():
    from molgen.vae import MoleculeVAE

    return MoleculeVAE.load(None, device="cpu")


def test_prefixes_are_the_first_tokens_of_the_lead_written_from_some_root(shipped_vae):
    from rdkit import Chem

    from molgen.optimize.explore import _prefixes

    lead = "CC(=O)Nc1ccc(O)cc1"
    oracle = SimpleNamespace(starts=[lead], top=lambda: [])
    origins = [0] * 40 + [None] * 10
    prefix = _prefixes(shipped_vae, oracle, origins, 0.5, torch.Generator().manual_seed(0))
    mol = Chem.MolFromSmiles(lead)
    rooted = [Chem.MolToSmiles(mol, rootedAtAtom=r) for r in range(mol.GetNumAtoms())]
    ids, lengths, _ = shipped_vae.tokenize(rooted)
    writings = [ids[j, 1 : int(lengths[j]) - 1].tolist() for j in range(len(rooted))]
    forced = [(row[row != 0]).tolist() for row in prefix]
    assert all(not f for f in forced[40:])  # rows without a lead decode freely
    used = [f for f in forced[:40] if f]
    assert 10 <= len(used) <= 30  # about half the lead's rows, as asked
    for f in used:  # each is the first 30-90 % of the tokens of one way of writing the lead
        assert any(w[: len(f)] == f and 0.3 * len(w) - 1 <= len(f) <= 0.9 * len(w) for w in writings)
    assert len({tuple(f) for f in used}) > 5  # from several roots and lengths
    assert _prefixes(shipped_vae, oracle, origins, 0.0, torch.Generator()) is None


def test_lead_search_with_prefixes_stays_above_the_floor(shipped_vae):
    lead = "CC(=O)Nc1ccc(O)cc1"
    result = optimize("qed", shipped_vae, budget=15, start=lead, min_similarity=0.5, seed=0,
                      options={**FAST, "predictor_train_size": 300, "predictor": {"epochs": 5}, "explore_prefix": 1.0})  # fmt: skip
    frame = result.frame
    assert len(frame) == result.oracle.calls > 0 and frame.smiles.is_unique
    assert (frame.similarity_to_start >= 0.5).all()


def test_mutants_are_point_mutations_of_the_pool_the_model_can_write(shipped_vae):
    from molgen import chem
    from molgen.optimize.explore import _mutants
    from molgen.optimize.oracle import Oracle

    lead = "CC(=O)Nc1ccc(O)cc1"
    oracle = Oracle("qed", budget=10, starts=[lead])
    origins = [0] * 60 + [None] * 20
    out = _mutants(shipped_vae, oracle, origins, 0.5, torch.Generator().manual_seed(0))
    assert out and all(i < 60 for i in out)  # only rows with a lead, about half of them
    assert 15 <= len(out) <= 45
    assert len(shipped_vae.tokenize(list(out.values()))[2]) == len(out)  # the model can write every one
    fp = chem.morgan_fingerprint(lead)
    similarity = sorted(chem.tanimoto(fp, chem.morgan_fingerprint(s)) for s in out.values())
    assert similarity[-1] >= 0.6  # local edits: some stay close to the lead
    assert all(s not in oracle.records and s != oracle.starts[0] for s in out.values())  # nothing met before, not the lead
    assert len(set(out.values())) > 5
    again = _mutants(shipped_vae, oracle, origins, 0.5, torch.Generator().manual_seed(0))
    assert again == out  # same generator, same mutants
    assert _mutants(shipped_vae, oracle, origins, 0.0, torch.Generator()) == {}


def test_lead_search_with_mutants_finds_molecules_above_a_high_floor(shipped_vae):
    """Paracetamol at a 0.6 floor: latent decodes alone find no feasible molecule; mutants find several."""
    lead = "CC(=O)Nc1ccc(O)cc1"
    options = {**FAST, "n_starts": 32, "predictor_train_size": 300, "predictor": {"epochs": 5}}
    plain = optimize("qed", shipped_vae, budget=10, start=lead, min_similarity=0.6, seed=0, options={**options, "explore_mutate": 0.0})
    assert plain.oracle.calls == 0
    result = optimize("qed", shipped_vae, budget=10, start=lead, min_similarity=0.6, seed=0, options=options)  # mutants by default
    frame = result.frame
    assert len(frame) == result.oracle.calls >= 5 and frame.smiles.is_unique
    assert (frame.similarity_to_start >= 0.6).all()
    mutants = result.summary["method_facts"]["mutants"]
    assert 0 < mutants["charged"] <= 10 and mutants["proposed"] >= mutants["charged"]
