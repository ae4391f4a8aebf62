"""Issue 28: gradient optimization's decode-and-score pipeline and the oracle's on-demand properties give
the results of decoding and scoring one batch at a time, computing every property of every molecule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from molgen import chem
from molgen.optimize import GradientConfig, Oracle, optimize_gradient
from molgen.optimize.outputs import results_frame
from molgen.optimize.predictor import PredictorTrainingConfig, fit_predictor

MOLECULES = ["CCO", "c1ccccc1O", "CC(=O)Nc1ccc(O)cc1", "C1CCCCCCCCC1", "O=C(O)C1CC1N", "CN1CCC[C@H]1c1cccnc1"]


def test_property_values_are_the_single_property_functions_floats():
    for smiles in MOLECULES:
        mol = chem.parse_smiles(smiles)
        expected = {name: func(mol) for name, func in chem.PROPERTIES.items()}
        for names in (list(chem.PROPERTIES), ["plogp"], ["plogp_norm", "sa"], ["qed", "plogp", "logp"], []):
            assert chem.property_values(mol, names) == [expected[n] for n in names], (smiles, names)
    assert chem.penalized_logp(chem.parse_smiles("C1CCCCCCCCC1")) < chem.logp(chem.parse_smiles("C1CCCCCCCCC1")) - 4  # ring penalty kept


def test_canonical_with_properties_canonicalises_then_describes_the_canonical_form():
    assert chem.canonical_with_properties("OCC", ["qed", "mw"]) == ("CCO", chem.compute_properties(["CCO"], ["qed", "mw"]).iloc[0, 1:].tolist())
    assert chem.canonical_with_properties("CCO", ["mw"]) == ("CCO", [chem.mol_weight(chem.parse_smiles("CCO"))])
    assert chem.canonical_with_properties("C1CC", ["qed"]) == (None, None)


def test_oracle_computes_the_needed_properties_and_completes_the_rest_for_the_table():
    oracle = Oracle("qed", constraints=["mw<=500"])
    assert oracle.property_names == ["qed", "mw"]
    oracle(MOLECULES)
    record = oracle.records["CCO"]
    assert set(record.properties) == {"qed", "mw"}
    frame = results_frame(oracle)  # fills the other columns of the reported molecules
    full = chem.compute_properties(frame.smiles.tolist()).set_index("smiles")
    for name in chem.PROPERTIES:
        assert frame[name].tolist() == full.loc[frame.smiles, name].tolist(), name
    oracle.track_properties(["sa", "not-a-property"])
    assert oracle.property_names == ["qed", "mw", "sa"]


def test_oracle_takes_canonical_forms_and_properties_computed_elsewhere():
    oracle = Oracle("qed")
    scores = oracle(["OCC", "C1CC"], canonical={"OCC": "CCO"}, properties={"CCO": [0.125]})
    assert scores[0] == 0.125 and math.isnan(scores[1])
    assert oracle.history[0].smiles == "CCO" and oracle.counts["invalid"] == 1


class _DecodeOnly:
    """The tiny VAE seen through ``decode`` alone: the scorer falls back to ``vae.decode``."""

    def __init__(self, vae) -> None:
        self._vae, self.config, self.device = vae, vae.config, vae.device

    def decode(self, z, options=None, seed=0, **kwargs):
        return self._vae.decode(z, options, seed=seed, n_jobs=1)


@pytest.fixture(scope="module")
def tiny(untrained_tiny_vae):
    vae = untrained_tiny_vae
    z = np.random.default_rng(0).normal(size=(300, vae.config.latent_dim)).astype(np.float32)
    smiles = vae.decode(z, n_jobs=1)
    y = chem.compute_properties([s or "" for s in smiles], ["qed"])["qed"].fillna(0.0).to_numpy(dtype=np.float32)[:, None]
    return vae, fit_predictor(z, y, ["qed"], PredictorTrainingConfig(epochs=5, model={"hidden": 16, "members": 2}))


def _run(vae, predictor, n_jobs: int, temperature: float, budget: int | None):
    oracle = Oracle("qed", budget=budget)
    cfg = GradientConfig(n_starts=160, steps=4, decode_every=1, batch_size=64, n_jobs=n_jobs, decode_temperature=temperature)
    run = optimize_gradient(vae, oracle, predictor, cfg, seed=3)
    calls = [(r.smiles, r.score, r.status, r.step, r.call) for r in oracle.records.values()]
    return calls, dict(oracle.counts), run.decoded, run.trajectory, sorted(run.latents)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
@pytest.mark.parametrize("budget", [None, 130])  # 130: spent in the middle of an ascent
def test_pipelined_decoding_scores_what_decoding_one_batch_at_a_time_scores(tiny, temperature, budget):
    vae, predictor = tiny
    reference = _run(_DecodeOnly(vae), predictor, 1, temperature, budget)  # vae.decode, scored one batch later
    assert reference[0], "the tiny model decoded nothing valid"
    assert _run(vae, predictor, 1, temperature, budget) == reference  # tokens here, chemistry deduplicated in this process
    assert _run(vae, predictor, 2, temperature, budget) == reference  # chemistry in two worker processes
    if budget is not None:
        assert sum(1 for c in reference[0] if c[4] is not None) == budget
