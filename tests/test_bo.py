"""Latent-space Bayesian optimization: budget accounting, de-duplication, failures, Ctrl-C, seeds, trust regions.

The search logic runs on a toy "VAE" whose decoder maps z[0] to the length of a
carbon chain (short chains are invalid), so the best molecule is known and
repeats and invalid decodes are frequent; end-to-end paths use an untrained tiny
SELFIES VAE (its decodes are valid and varied, which is all BO needs).
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import build_untrained_tiny_vae

from molgen.errors import ConfigError
from molgen.optimize import optimize
from molgen.optimize.bo_config import BOConfig
from molgen.optimize.bo_space import LatentBox, _Data, _Region
from molgen.optimize.bo_region import _update
from molgen.viz import can_draw_molecules

# The chain toy needs the latent surrogate (chains longer than five carbons share one Morgan
# fingerprint) and no weighted retraining (it has no network to train).
TOY_OPTIONS = dict(surrogate="latent", finetune_every=0, projection="none", n_init=4, batch_size=3, n_candidates=256, fit_iters=15, max_train=64)


class ChainVAE:
    """z -> 'C' * round(3 z0 + 6); lengths below 1 decode to None (invalid)."""

    device = torch.device("cpu")
    meta = {"path": "chain-toy"}

    def __init__(self, latent_dim: int = 3) -> None:
        self.config = SimpleNamespace(latent_dim=latent_dim)

    def decode(self, z, options=None, seed=0, **kwargs):
        lengths = np.round(np.asarray(z)[:, 0] * 3 + 6).astype(int)
        return ["C" * k if k > 0 else None for k in lengths]

    def encode(self, smiles, **kwargs):
        kept = [i for i, s in enumerate(smiles) if s and set(s) == {"C"}]
        z = np.zeros((len(kept), self.config.latent_dim), dtype=np.float32)
        z[:, 0] = [(len(smiles[i]) - 6) / 3 for i in kept]
        return z, kept


def _log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_budget_is_spent_on_new_unique_valid_molecules_only(tmp_path):
    result = optimize("heavy_atoms=12", model=ChainVAE(), method="bo", budget=10, options=TOY_OPTIONS, out_dir=tmp_path, seed=0)
    oracle = result.oracle
    assert oracle.calls == 10
    smiles = [r.smiles for r in oracle.history]
    assert len(set(smiles)) == 10 and [r.call for r in oracle.history] == list(range(1, 11))
    # The decoder maps many z to one chain and short chains to nothing: both happen, neither is charged.
    assert oracle.counts["duplicate"] > 0 and oracle.counts["invalid"] > 0
    log = _log(tmp_path / "oracle_log.jsonl")
    assert [e["call"] for e in log] == list(range(1, 11))
    assert result.frame.smiles.iloc[0] == "C" * 12  # the optimum, found within 10 of the 16 molecules
    facts = result.summary["method_facts"]
    assert facts["space"]["dims"] == 3 and facts["batches"] >= 2  # 4 initial, then batches of at most 3
    assert sum(b["new"] for b in facts["trajectory"]) == 6


def test_stops_when_no_new_molecules_can_be_found():
    # Only 16 distinct chains exist inside the search box; a budget of 40 cannot be spent.
    result = optimize("heavy_atoms=12", model=ChainVAE(), method="bo", budget=40, options={**TOY_OPTIONS, "max_stalled": 3}, seed=0)
    facts = result.summary["method_facts"]
    assert facts["stopped"] == "stalled"
    assert result.oracle.calls <= 16 and len({r.smiles for r in result.oracle.history}) == result.oracle.calls


def test_failures_are_logged_per_molecule_and_the_run_continues(tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text(
        "def score(smiles):\n"
        "    out = []\n"
        "    for s in smiles:\n"
        "        if len(s) % 3 == 0:\n"
        "            raise RuntimeError('docking crashed')\n"
        "        out.append(float('nan') if len(s) % 3 == 1 else -abs(len(s) - 11))\n"
        "    return out\n"
    )
    result = optimize(f"{script}:score", model=ChainVAE(), method="bo", budget=12, options=TOY_OPTIONS, out_dir=tmp_path / "out", seed=1)
    oracle = result.oracle
    assert oracle.calls == 12 and oracle.counts["failed"] >= 2
    errors = {e["smiles"]: e["error"] for e in _log(tmp_path / "out" / "oracle_log.jsonl") if e["status"] == "failed"}
    assert errors and all(("docking crashed" in msg) == (len(s) % 3 == 0) for s, msg in errors.items())
    assert all(len(s) % 3 == 2 for s in result.frame.smiles)  # only successful scores are ranked
    assert result.frame.smiles.iloc[0] == "C" * 11


def test_ctrl_c_leaves_a_complete_log_and_csv(tmp_path):
    script = tmp_path / "interrupt.py"
    script.write_text(
        "seen = []\n"
        "def score(smiles):\n"
        "    seen.extend(smiles)\n"
        "    if len(seen) > 7:\n"
        "        raise KeyboardInterrupt\n"
        "    return [len(s) for s in smiles]\n"
    )
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        optimize(f"{script}:score", model=ChainVAE(), method="bo", budget=30, options=TOY_OPTIONS, out_dir=out, seed=0)
    log = _log(out / "oracle_log.jsonl")
    frame = pd.read_csv(out / "molecules.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True and 4 <= summary["oracle_calls"] == len(log) == len(frame) < 8
    assert sorted(frame.smiles) == sorted(e["smiles"] for e in log)


def test_trust_region_grows_shrinks_and_restarts():
    cfg = BOConfig(success_tol=2, length_init=0.8, length_min=0.3)
    data = _Data(2)
    data.add(torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]), [0.1, 0.5, 0.3], ["C", "CC", "CCC"])
    region = _Region(0.8, center=1, best=0.5)
    centers = {"CC"}
    for i, value in enumerate([0.6, 0.7]):  # two improving batches: the centre follows, the length doubles
        data.add(torch.tensor([[0.5 + 0.01 * (i + 1), 0.5]]), [value], ["C" * (4 + i)])
        assert not _update(region, data, [value], cfg, failure_tol=1, centers=centers)
    assert region.length == pytest.approx(1.6) and region.center == 4 and region.best == 0.7
    assert not _update(region, data, [0.7], cfg, 1, centers)  # no improvement: halves
    assert region.length == pytest.approx(0.8)
    assert not _update(region, data, [math.nan], cfg, 1, centers)  # only failures: halves
    assert region.length == pytest.approx(0.4)
    assert _update(region, data, [], cfg, 1, centers)  # below length_min: restart at the best unused centre
    assert region.length == cfg.length_init and data.smiles[region.center] == "C" * 5 and region.best == 0.7
    assert _update(region, data, [], cfg, 1, centers) is False and _update(region, data, [], cfg, 1, centers)
    assert data.smiles[region.center] == "C" * 4  # the next best that was never a centre
    # Too few new molecules (the decoder maps the whole region to a few): grow, and restart at full size.
    assert not _update(region, data, [0.2], cfg, 1, centers, starved=True) and region.length == pytest.approx(1.6)
    assert _update(region, data, [0.2], cfg, 1, centers, starved=True) and data.smiles[region.center] == "CCC"


def test_bad_options_and_missing_budget_are_config_errors():
    with pytest.raises(ConfigError, match="bo options: unknown key"):
        optimize("qed", model=ChainVAE(), method="bo", budget=5, options={"batchsize": 3})
    with pytest.raises(ConfigError, match="acquisition"):
        optimize("qed", model=ChainVAE(), method="bo", budget=5, options={"acquisition": "ei"})
    with pytest.raises(ConfigError, match="y_transform"):
        optimize("qed", model=ChainVAE(), method="bo", budget=5, options={"y_transform": "log"})
    with pytest.raises(ConfigError, match="warm_fit_iters"):
        optimize("qed", model=ChainVAE(), method="bo", budget=5, options={"warm_fit_iters": 0})
    with pytest.raises(ConfigError, match="finite --budget"):
        optimize("qed", model=ChainVAE(), method="bo", budget=None, options=TOY_OPTIONS)


# -- the tiny real VAE ---------------------------------------------------------

REAL_OPTIONS = dict(dims=4, n_init=8, batch_size=6, n_candidates=256, fit_iters=15, projection_molecules=300)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A fresh instance for this module (the BO tests must not share one with other modules)."""
    return build_untrained_tiny_vae(tmp_path_factory.mktemp("untrained"))


def test_rank_transform_keeps_order_ties_and_normal_scale():
    from molgen.optimize.bo_gp import _copula

    y = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 2.0, 1e6], dtype=torch.float64)
    q = _copula(y)
    assert torch.all(q[:4] == q[0]) and torch.all(q[3:].diff() > 0)  # ties share a value; order kept
    # The four tied zeros take mean rank 2.5 of 8: Phi^-1((2.5 - 0.5) / 8) = Phi^-1(0.25).
    assert q[0].item() == pytest.approx(-0.6744897, abs=1e-6)
    assert q[-1].item() == pytest.approx(1.5341, abs=1e-3)  # Phi^-1(7.5 / 8): the outlier no longer dominates


def test_pca_box_round_trips(tiny):
    box = LatentBox.build(tiny, BOConfig(dims=4, projection_molecules=300))
    assert box.dims == 4 and 0 < box.explained <= 1
    x = torch.rand(5, 4, dtype=torch.float64) * 0.6 + 0.2
    assert box.from_latent(box.to_latent(x)).numpy() == pytest.approx(x.numpy(), abs=1e-5)


def test_same_seed_same_molecules_and_thompson_or_qlogei(tiny):
    def run(seed, budget=16, **extra):
        result = optimize("pmo:qed", model=tiny, method="bo", budget=budget, options={**REAL_OPTIONS, **extra}, seed=seed)
        assert result.oracle.calls == budget
        return [r.smiles for r in result.oracle.history]

    first = run(0)
    assert run(0) == first
    assert run(1) != first
    assert len(set(run(0, budget=12, acquisition="qlogei", batch_size=4, surrogate="latent"))) == 12
    latent = run(0, surrogate="latent", y_transform="rank")
    assert latent == run(0, surrogate="latent", y_transform="rank") and len(set(latent)) == 16 and latent != first


def test_start_molecules_seed_the_initial_design(tiny):
    start = "CCOC(=O)c1ccccc1"
    result = optimize("pmo:qed", model=tiny, method="bo", budget=12, start=start, options=REAL_OPTIONS, seed=0)
    assert result.oracle.calls == 12
    assert all(r.origin == 0 for r in result.oracle.history)  # one start: every molecule is reached from it


def test_cli_bo_run(tiny, tmp_path):
    from typer.testing import CliRunner

    from molgen.cli import app

    out = tmp_path / "bo"
    args = ["optimize", "--objective", "pmo:qed", "--method", "bo", "--budget", "14", "--batch-size", "6", "--model", tiny.meta["path"],
            "-o", str(out), "--quiet", "--threads", "1", "--option", "dims=4", "--option", "n_init=8", "--option", "projection_molecules=300",
            "--option", "n_candidates=256", "--option", "fit_iters=15"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "14 oracle calls" in result.output
    pictures = ("top_molecules.png",) if can_draw_molecules() else ()  # RDKit draws where libXrender is installed
    for name in ("molecules.csv", *pictures, "best_so_far.png", "oracle_log.jsonl", "summary.json"):
        assert (out / name).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "bo" and summary["method_facts"]["config"]["batch_size"] == 6


def test_a_slow_molecule_times_out_and_the_run_continues(tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(
        "import time\n"
        "def score(smiles):\n"
        "    for s in smiles:\n"
        "        if len(s) == 8:\n"
        "            time.sleep(30)\n"
        "    return [-abs(len(s) - 9) for s in smiles]\n"
    )
    result = optimize(f"{script}:score", model=ChainVAE(), method="bo", budget=8, options=TOY_OPTIONS, seed=0, timeout=0.5)
    failed = [r for r in result.oracle.history if r.status == "failed"]
    assert result.oracle.calls == 8 and [r.smiles for r in failed] == ["C" * 8]
    assert failed[0].error.endswith("score: ObjectiveTimeout: took longer than 0.5 s")


def test_gp_fit_warm_starts_from_the_previous_hyperparameters():
    from molgen.optimize.bo_gp import _fit_gp, _hypers

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(6 * x[:, 0]) + 0.1 * x[:, 1]
    fitted = _fit_gp(x, y, iters=75)
    lengthscale = fitted.covar_module.lengthscale.detach()
    # One L-BFGS iteration from the fitted values stays at them; one from the prior's mode does not get there.
    warm = _fit_gp(x, y, iters=1, init=_hypers(fitted)).covar_module.lengthscale.detach()
    cold = _fit_gp(x, y, iters=1).covar_module.lengthscale.detach()
    torch.testing.assert_close(warm, lengthscale, rtol=1e-2, atol=1e-3)
    assert not torch.allclose(cold, lengthscale, rtol=1e-2, atol=1e-3)
    assert not any(k.startswith("outcome_transform") for k in _hypers(fitted))
    # A restart forgets the region's hyperparameters.
    data = _Data(3)
    data.add(x[:3].float(), [0.1, 0.5, 0.2], ["C", "CC", "CCC"])
    region = _Region(0.8, center=1, best=0.5, hypers=_hypers(fitted))
    from molgen.optimize.bo_region import _restart

    _restart(region, data, BOConfig(**TOY_OPTIONS), set())
    assert region.hypers is None


def test_a_flat_objective_fits_without_warnings():
    """Every batch of an objective that scores everything alike (valsartan_smarts) used to print a botorch warning."""
    import warnings

    from molgen.optimize.bo_gp import _fit_gp

    x = torch.rand(30, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _fit_gp(x, x[:, 0], iters=1)  # import botorch first: its own import-time deprecation notices are not ours
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = _fit_gp(x, torch.zeros(30, dtype=torch.float64), iters=5)
    assert [str(w.message)[:60] for w in caught] == []
    mean = model.posterior(x[:3]).mean.detach()
    torch.testing.assert_close(mean, torch.zeros_like(mean), atol=1e-6, rtol=0)


def test_patience_restarts_a_region_that_bounces_between_shrinking_and_growing():
    """Failures halve the region and starved batches double it, so without patience it can circle one basin forever."""
    data = _Data(2)
    data.add(torch.tensor([[0.1, 0.1], [0.5, 0.5], [0.9, 0.9]]), [0.1, 0.5, 0.3], ["C", "CC", "CCC"])
    for patience, restart_at in ((0, None), (4, 4)):
        cfg = BOConfig(length_init=0.4, length_min=0.01, length_max=1.6, patience=patience)
        region, centers = _Region(0.4, center=1, best=0.5), {"CC"}
        restarts = []
        for batch in range(1, 13):  # alternate: a full batch that does not improve, then a starved one
            if _update(region, data, [0.4], cfg, 1, centers, starved=batch % 2 == 0):
                restarts.append(batch)
                break
            assert region.stale == batch and region.length in (pytest.approx(0.2), pytest.approx(0.4))
        assert restarts == ([] if restart_at is None else [restart_at])
    assert data.smiles[region.center] == "CCC" and region.stale == 0 and region.length == 0.4
    # An improving batch resets the count.
    region = _Region(0.4, center=1, best=0.5, stale=3)
    data.add(torch.tensor([[0.55, 0.5]]), [0.6], ["CCCC"])
    assert not _update(region, data, [0.6], cfg, 1, {"CC"}) and region.stale == 0 and region.best == 0.6


def test_option_values_of_the_wrong_type_are_one_line_errors():
    with pytest.raises(ConfigError, match="bo options: patience must be an integer, not 'abc'"):
        BOConfig.from_dict({"patience": "abc"})
    with pytest.raises(ConfigError, match="bo options: bound must be a number, not \\[1\\]"):
        BOConfig.from_dict({"bound": [1]})
    with pytest.raises(ConfigError, match="warm_start must be true or false, not 1"):
        BOConfig.from_dict({"warm_start": 1})
    assert BOConfig.from_dict({"patience": 5, "bound": 3, "warm_start": True}).bound == 3  # an int for a float field is fine


# -- the Tanimoto surrogate -------------------------------------------------------


def test_tanimoto_kernel_matches_rdkit_and_hand_values():
    from rdkit import DataStructs

    from molgen.chem.fingerprints import fingerprint_array, morgan_fingerprint
    from molgen.optimize.bo_gp import _tanimoto_kernel_class

    kernel = _tanimoto_kernel_class()()
    a = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    # |a0 & b| = 1, |a0 | b| = 3; likewise for a1.
    assert kernel.forward(a, b).flatten().tolist() == pytest.approx([1 / 3, 1 / 3])
    assert kernel.forward(a, a, diag=True).tolist() == [1.0, 1.0]
    smiles = ["CCOC(=O)c1ccccc1", "CCOC(=O)c1ccccc1C", "c1ccncc1", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"]
    fps = torch.from_numpy(fingerprint_array(smiles, n_jobs=1)).double()
    expected = [DataStructs.BulkTanimotoSimilarity(morgan_fingerprint(s), [morgan_fingerprint(t) for t in smiles]) for s in smiles]
    assert kernel.forward(fps, fps).numpy() == pytest.approx(np.array(expected), abs=1e-9)


def test_tanimoto_gp_ranks_a_near_copy_of_the_best_molecule_first():
    from molgen.chem.fingerprints import fingerprint_array
    from molgen.optimize.bo_gp import _fit_gp, _tanimoto_kernel
    from molgen.optimize.bo_space import _Molecules

    molecules = _Molecules()
    scored = {"CCOC(=O)c1ccccc1": 1.0, "CCOC(=O)c1ccccc1Cl": 0.9, "CCCCCCCC": 0.0, "OCCO": 0.0, "c1ccncc1": 0.1, "CCN(CC)CC": 0.0}
    molecules.add(list(scored), list(scored.values()))
    molecules.add(["CCCCCCCC"], [5.0])  # a molecule already held keeps its first score
    fps, y = molecules.nearest("CCOC(=O)c1ccccc1", k=3)
    # Itself, the chloro analogue (Tanimoto 0.548), then octane (0.111, its first score kept), ahead of pyridine (0.107).
    assert y.tolist() == [1.0, 0.9, 0.0]
    fps, y = molecules.nearest("CCOC(=O)c1ccccc1", k=10)
    assert len(y) == 6 and sorted(y.tolist()) == [0.0, 0.0, 0.0, 0.1, 0.9, 1.0]
    model = _fit_gp(fps, y, iters=30, kernel=_tanimoto_kernel())
    candidates = ["CCCCCCCCC", "CCOC(=O)c1ccccc1F", "OCCCO"]
    with torch.no_grad():
        mean = model.posterior(torch.from_numpy(fingerprint_array(candidates, n_jobs=1)).double()).mean.flatten()
    assert int(mean.argmax()) == 1 and mean[1] > mean[0] + 0.2 and mean[1] > mean[2] + 0.2


def test_tanimoto_surrogate_charges_only_distinct_new_molecules_and_is_seeded(tiny):
    options = {**REAL_OPTIONS, "n_candidates": 128, "max_train": 40}  # the default surrogate

    def run(seed):
        result = optimize("pmo:qed", model=tiny, method="bo", budget=30, options=options, seed=seed)
        assert result.oracle.calls == 30
        smiles = [r.smiles for r in result.oracle.history]
        assert len(set(smiles)) == 30
        facts = result.summary["method_facts"]
        assert facts["config"]["surrogate"] == "tanimoto" and facts["batches"] >= 4  # 8 initial, then batches of 6
        assert facts["decoded"] >= 128 * (facts["batches"])  # every batch decodes its candidates first
        return smiles

    first = run(0)
    assert run(0) == first and run(1) != first
    with pytest.raises(ConfigError, match="surrogate must be 'latent' or 'tanimoto'"):
        BOConfig(surrogate="ecfp")
    with pytest.raises(ConfigError, match="add --option surrogate=latent"):
        BOConfig(acquisition="qlogei")  # the default surrogate is tanimoto


def _recon_loss(vae, smiles: str) -> float:
    ids, lengths, _ = vae.tokenize([smiles])
    with torch.no_grad():
        return vae.model(ids, lengths).recon.item()


def test_weighted_retraining_teaches_a_private_copy_the_best_molecules(tiny):
    from molgen.optimize.bo_retrain import _Tuner

    smiles = ["CCOC(=O)c1ccccc1", "CCCCCCCC", "OCCO", "c1ccncc1", "CC(C)O", "CCN"]
    data = _Data(4)
    data.add(torch.zeros(len(smiles), 4), [0.9, 0.1, 0.2, 0.3, 0.4, 0.5], smiles)
    tuner = _Tuner(tiny, BOConfig(finetune_every=1, finetune_steps=30, finetune_batch=8, finetune_lr=3e-3), seed=0)
    before = {s: _recon_loss(tuner.vae, s) for s in smiles}
    facts = tuner.update(data)
    after = {s: _recon_loss(tuner.vae, s) for s in smiles}
    # Weights 1 / (0.006 + rank): the best molecule takes ~86 % of the draws, the worst (rank 5) ~3 %.
    assert facts["molecules"] == 6
    assert after["CCOC(=O)c1ccccc1"] < 0.5 * before["CCOC(=O)c1ccccc1"]
    assert before["CCCCCCCC"] - after["CCCCCCCC"] < before["CCOC(=O)c1ccccc1"] - after["CCOC(=O)c1ccccc1"]
    assert _recon_loss(tiny, "CCOC(=O)c1ccccc1") == pytest.approx(before["CCOC(=O)c1ccccc1"])  # the caller's model is untouched
    assert not tuner.vae.model.training
    # Re-encoding moves each stored point to its molecule's code under the updated encoder.
    box = LatentBox.build(tuner.vae, BOConfig(dims=4, projection_molecules=300))
    tuner.reencode(data, box)
    z, _ = tuner.vae.encode(smiles)
    assert data.x.numpy() == pytest.approx(box.from_latent(z).numpy(), abs=1e-6)


def test_bo_with_finetuning_is_seeded_and_leaves_the_callers_model_alone(tiny):
    options = {**REAL_OPTIONS, "n_candidates": 128, "max_train": 40, "finetune_every": 2, "finetune_steps": 3, "finetune_batch": 8}
    weights = {k: v.clone() for k, v in tiny.model.state_dict().items()}

    def run(seed):
        # No sanity filter: the tiny model's molecules would be dropped and the batches counted here shift.
        result = optimize("pmo:qed", model=tiny, method="bo", budget=32, options=options, seed=seed, sanity_filter=False)
        assert result.oracle.calls == 32 and len({r.smiles for r in result.oracle.history}) == 32
        facts = result.summary["method_facts"]
        assert [f["step"] for f in facts["finetunes"]] == [2, 4]  # none after the batch that spends the budget
        return [r.smiles for r in result.oracle.history]

    first = run(0)
    assert run(0) == first
    assert all(torch.equal(weights[k], v) for k, v in tiny.model.state_dict().items())
    plain = optimize("pmo:qed", model=tiny, method="bo", budget=32, options={**options, "finetune_every": 0}, seed=0, sanity_filter=False)
    # Identical until the first update (after batch 2, which found no new molecule: 8 initial + 6), then not.
    assert [r.smiles for r in plain.oracle.history][:14] == first[:14] and [r.smiles for r in plain.oracle.history] != first
    started = optimize("pmo:qed", model=tiny, method="bo", budget=20, start=["CCOC(=O)c1ccccc1", "c1ccncc1"], options=options, seed=0, sanity_filter=False)
    assert started.oracle.calls == 20 and {r.origin for r in started.oracle.history} <= {0, 1}  # starts re-encoded too
    with pytest.raises(ConfigError, match="needs a trained molecular VAE"):
        optimize("heavy_atoms=12", model=ChainVAE(), method="bo", budget=6, options={**TOY_OPTIONS, "finetune_every": 1})
    with pytest.raises(ConfigError, match="finetune_every must be >= 0"):
        BOConfig(finetune_every=-1)


def test_box_anchored_on_starts_decodes_their_codes(tmp_path):
    """A PCA box loses what makes a lead itself; anchoring adds each start's residual back near it."""
    from molgen.optimize.bo_space import _encode_starts

    vae = build_untrained_tiny_vae(tmp_path)
    box = LatentBox.build(vae, BOConfig(dims=3, projection_molecules=200))
    starts = ["CC(=O)Nc1ccc(O)cc1", "CCN(CC)CCOC(=O)c1ccc(N)cc1"]
    z, kept = vae.encode(starts)
    assert kept == [0, 1]
    lost = np.abs(box.to_latent(box.from_latent(z)) - z).max()
    assert lost > 1e-2  # the subspace alone moves the codes
    x = _encode_starts(vae, box, starts)
    np.testing.assert_allclose(box.to_latent(x), z, atol=1e-5)
    # A point beside a start takes that start's residual: it decodes near the start's code, not near the subspace.
    beside = (x + 1e-3).clamp(0, 1)
    moved = box.to_latent(beside)
    assert np.abs(moved - z).max() < 0.1 * lost
    assert np.abs(moved[0] - z[1]).max() > np.abs(moved[0] - z[0]).max()


def test_empty_initial_design_names_the_constraints():
    from molgen.optimize.bo import _empty_design_message

    blocked = SimpleNamespace(counts={"invalid": 0, "duplicate": 3, "infeasible": 97, "filtered": 0, "failed": 0})
    message = _empty_design_message(blocked)
    assert "97 infeasible" in message and "--min-similarity" in message and "\n" not in message
    failing = SimpleNamespace(counts={"invalid": 0, "duplicate": 0, "infeasible": 0, "filtered": 0, "failed": 100})
    assert "check the objective" in _empty_design_message(failing)


def test_oracle_screens_similarity_without_recording():
    from molgen.optimize.oracle import Oracle

    oracle = Oracle("qed", budget=5, constraints=["sim>=0.5"], starts=["CCOC(=O)c1ccccc1", "c1ccncc1"])
    near, far = "CCOC(=O)c1ccccc1C", "CCCCCCCCCCCC"
    assert oracle.meets_similarity([near, far, "c1ccncc1C"]) == [True, False, False]  # the last is below 0.5 to pyridine
    assert oracle.meets_similarity([near, near], origins=[0, 1]) == [True, False]  # to the named origin
    assert oracle.calls == 0 and not oracle.records and oracle.counts["infeasible"] == 0
    assert Oracle("qed", budget=5).meets_similarity([far]) == [True]  # no floor: nothing is screened


def test_bo_near_a_lead_ranks_only_molecules_above_the_floor():
    from molgen.vae import MoleculeVAE

    options = dict(dims=8, n_init=8, batch_size=6, n_candidates=256, fit_iters=15, projection_molecules=300, finetune_every=0)
    result = optimize("qed", model=MoleculeVAE.load(None, device="cpu"), method="bo", budget=20, start="CC(=O)Nc1ccc(O)cc1",
                      min_similarity=0.4, options=options, seed=0)  # fmt: skip
    oracle = result.oracle
    batches = result.summary["method_facts"]["trajectory"]
    assert oracle.calls == 20
    assert sum(b.get("below_floor", 0) for b in batches) > 100  # a region of length 0.8 reaches far below the floor
    # Only the initial design reaches the oracle unscreened: no later step sends it an infeasible molecule.
    assert all(r.step == 0 for r in oracle.records.values() if r.status == "infeasible")
    assert all(r.similarity >= 0.4 for r in oracle.history)


def test_bo_near_a_lead_seeds_its_design_with_mutants_when_decodes_miss_the_floor(tiny):
    # The untrained model decodes nothing within 0.5 of the lead: the design falls back on its mutants.
    lead = "CCOC(=O)c1ccccc1C"
    options = {**REAL_OPTIONS, "finetune_every": 0}
    result = optimize("qed", model=tiny, method="bo", budget=12, start=lead, min_similarity=0.5, options=options, seed=0, sanity_filter=False)
    facts = result.summary["method_facts"]
    # Every call is a mutant (BO's own decodes never reach the floor afterwards, and it stops stalled).
    assert facts["design_mutants"] == result.oracle.calls > 0 and facts["stopped"] == "stalled"
    assert all(r.similarity >= 0.5 for r in result.oracle.history)
    again = optimize("qed", model=tiny, method="bo", budget=12, start=lead, min_similarity=0.5, options=options, seed=0, sanity_filter=False)
    assert [r.smiles for r in again.oracle.history] == [r.smiles for r in result.oracle.history]
