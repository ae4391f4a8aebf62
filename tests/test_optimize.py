"""Latent optimization: objective specs, constraints, oracle accounting, outputs, gradient optimizer, CLI.

The optimizer logic is tested on a toy "VAE" whose decoder maps z[0] to the
length of a carbon chain, so the best molecule under each objective is known;
the end-to-end paths use a tiny real VAE trained once per session.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from molgen import chem
from molgen.errors import ConfigError, InvalidSmilesError
from molgen.optimize import (
    ConstraintSet,
    GradientConfig,
    Oracle,
    PredictorTrainingConfig,
    fit_predictor,
    optimize,
    optimize_gradient,
    parse_objective,
)
from molgen.viz import can_draw_molecules

# The tiny VAE's predictors are weak by design (two epochs on 400 molecules); their warning is tested elsewhere.
pytestmark = pytest.mark.filterwarnings("ignore:held-out")

# -- fixtures ------------------------------------------------------------------


class ChainVAE:
    """z -> 'C' * round(3 z0 + 6) (length 0: invalid); encode inverts it for pure carbon chains."""

    device = torch.device("cpu")
    meta = {"path": "chain-toy"}

    def __init__(self, latent_dim: int = 4) -> None:
        self.config = SimpleNamespace(latent_dim=latent_dim)

    def length(self, z) -> np.ndarray:
        return np.clip(np.round(np.asarray(z)[:, 0] * 3 + 6), 0, 40).astype(int)

    def decode(self, z, options=None, seed=0, **kwargs):
        return ["C" * k if k > 0 else None for k in self.length(z)]

    def encode(self, smiles, **kwargs):
        kept = [i for i, s in enumerate(smiles) if s and set(s) == {"C"}]
        z = np.zeros((len(kept), self.config.latent_dim), dtype=np.float32)
        z[:, 0] = [(len(smiles[i]) - 6) / 3 for i in kept]
        return z, kept


def _chain_predictor(vae: ChainVAE, names=("heavy_atoms",)):
    z = np.random.default_rng(0).normal(size=(400, vae.config.latent_dim)).astype(np.float32) * 1.5
    y = vae.length(z).astype(float)[:, None].repeat(len(names), 1)
    return fit_predictor(z, y, list(names), PredictorTrainingConfig(epochs=60, model={"hidden": 32, "members": 3}))


@pytest.fixture(scope="module")
def chain():
    vae = ChainVAE()
    return vae, _chain_predictor(vae)


@pytest.fixture(scope="session")
def tiny_vae(tmp_path_factory):
    from molgen.datasets import default_training_smiles
    from molgen.vae.training import VAETrainingConfig, train_vae

    torch.set_num_threads(1)
    cfg = VAETrainingConfig(
        representation="selfies",
        model=dict(embed_dim=16, encoder_hidden=32, decoder_hidden=64, decoder_layers=1, latent_dim=16),
        train=dict(epochs=2, batch_size=64, lr=3e-3, seed=0),
        kl=dict(kind="linear", beta=0.1, warmup_steps=10),
        val_fraction=0.1,
        max_length=60,
    )
    vae, _ = train_vae(default_training_smiles(limit=400), tmp_path_factory.mktemp("tinyvae"), cfg, device="cpu", show_progress=False)
    return vae


FAST = dict(n_starts=16, steps=4, decode_every=2, predictor_train_size=300, predictor={"epochs": 5, "model": {"hidden": 16, "members": 2}})

# -- objectives ----------------------------------------------------------------


def test_weighted_objective_equals_weighted_properties():
    smiles = ["CC(=O)Nc1ccc(O)cc1", "c1ccccc1"]
    obj = parse_objective("qed:1,sa:-0.3")
    expected = [chem.qed(chem.parse_smiles(s)) - 0.3 * chem.sa_score(chem.parse_smiles(s)) for s in smiles]
    assert obj.score(smiles).values == pytest.approx(expected)
    assert obj.differentiable and obj.property_names == ["qed", "sa"]


def test_targets_ranges_and_similarity_values():
    logp = chem.logp(chem.parse_smiles("CCO"))
    assert parse_objective("logp=2.5").score(["CCO"]).values[0] == pytest.approx(-abs(logp - 2.5))
    assert parse_objective("mw=40..50").score(["CCO"]).values[0] == pytest.approx(0.0)  # 46.07 is inside
    assert parse_objective("mw=50..60").score(["CCO"]).values[0] == pytest.approx(46.069 - 50, abs=1e-2)
    sim = parse_objective("sim(OCC)").score(["CCO", "c1ccccc1"]).values
    assert sim[0] == pytest.approx(1.0) and sim[1] == pytest.approx(0.0)
    assert not parse_objective("sim(CCO)").differentiable


def test_surrogate_is_differentiable_and_points_to_the_target():
    obj = parse_objective("logp=2.5,qed:2")
    x = torch.tensor([1.0, 4.0], requires_grad=True)
    q = torch.tensor([0.5, 0.5], requires_grad=True)
    obj.surrogate({"logp": x, "qed": q}).sum().backward()
    assert x.grad.tolist() == [1.0, -1.0]  # below target: push up; above: push down
    assert q.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "spec, match",
    [
        ("nope", "unknown objective 'nope'"),
        ("qed:1,,sa", "empty term"),
        ("logp=high", "cannot read target"),
        ("mw=5..1", "empty"),
        ("no_such_module_xyz:f", "cannot import"),
        ("json:no_such_function", "has no function"),
        ("missing_file.py:f", "does not exist"),
    ],
)
def test_bad_objectives_give_one_line_errors(spec, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_objective(spec)
    assert "\n" not in str(info.value)


def test_user_functions_from_module_and_file(tmp_path, monkeypatch):
    (tmp_path / "my_scores_mod.py").write_text("def length(smiles):\n    return [len(s) for s in smiles]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(parse_objective("my_scores_mod:length:2").score(["CCO"]).values) == [6.0]
    path = tmp_path / "scores.py"
    path.write_text("raise RuntimeError('broken on import')\n")
    with pytest.raises(ConfigError, match="RuntimeError: broken on import"):
        parse_objective(f"{path}:f")


def test_failing_user_function_costs_only_the_bad_molecules(tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text(
        "import math\n"
        "def score(smiles):\n"
        "    out = []\n"
        "    for s in smiles:\n"
        "        if 'N' in s: raise ValueError('no nitrogen please')\n"
        "        out.append(math.nan if 'O' in s else float(len(s)))\n"
        "    return out\n"
    )
    oracle = Oracle(f"{path}:score", budget=10, log_path=tmp_path / "log.jsonl")
    values = oracle(["CCC", "CCN", "CCO"])
    oracle.close()
    assert values[0] == 3.0 and math.isnan(values[1]) and math.isnan(values[2])
    assert oracle.calls == 3 and oracle.counts["failed"] == 2
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["status"] for r in log] == ["ok", "failed", "failed"]
    assert "ValueError: no nitrogen please" in log[1]["error"]
    assert "returned nan" in log[2]["error"]


# -- constraints ---------------------------------------------------------------


def test_constraints_parse_check_and_reject_impossible_sets():
    cs = ConstraintSet.parse(["mw<=450", "logp<5", "sim>=0.4"])
    assert cs.violations({"mw": 500.0, "logp": 4.9}, similarity=0.39) == ["mw<=450", "sim>=0.4"]
    assert cs.violations({"mw": 450.0, "logp": 4.9}, similarity=0.4) == []
    assert cs.violations({"mw": math.nan, "logp": 1.0}) == ["mw<=450"]
    for bad, match in [
        (["qed>=1.5"], "impossible"),
        (["mw<=100", "mw>=200"], "impossible"),
        (["logp<3", "logp>3"], "impossible"),
        (["sim>1.0"], "impossible"),
        (["weight<3"], "unknown property"),
        (["mw=3"], "cannot read"),
    ]:
        with pytest.raises(ConfigError, match=match):
            ConstraintSet.parse(bad)
    ConstraintSet.parse(["logp<=3", "logp>=3"])  # a single point is possible


# -- oracle ----------------------------------------------------------------------


def test_oracle_counts_each_new_unique_valid_feasible_molecule_once(tmp_path):
    oracle = Oracle("heavy_atoms", budget=4, constraints=["heavy_atoms<=5"], log_path=tmp_path / "log.jsonl")
    v = oracle(["CCO", "OCC", None, "C1CC", "CCCCCCC", "CC"], step=3)
    assert list(v[:2]) == [3.0, 3.0] and math.isnan(v[2]) and math.isnan(v[3]) and math.isnan(v[4]) and v[5] == 2.0
    assert oracle.calls == 2
    assert oracle.counts == {"invalid": 2, "duplicate": 1, "infeasible": 1, "filtered": 0, "failed": 0}
    oracle(["CCO", "CCCCCCC"])  # repeats are free, also repeats of infeasible molecules
    assert oracle.calls == 2
    v = oracle(["C", "CCCC", "CCCCC"], step=4)  # budget 4: the last new molecule is not scored
    assert oracle.calls == 4 and oracle.exhausted and math.isnan(v[2])
    assert list(oracle.best_so_far()) == [3.0, 3.0, 3.0, 4.0]
    oracle.close()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["call"] for r in log if r["status"] == "ok"] == [1, 2, 3, 4]
    assert [r["status"] for r in log].count("infeasible") == 1
    assert {r["step"] for r in log} == {3, 4}


def test_similarity_constraint_is_relative_to_each_molecules_start():
    oracle = Oracle("qed", constraints=["sim>=0.5"], starts=["CCCCCCO", "c1ccccc1O"])
    v = oracle(["CCCCCCCO", "CCCCCCCO"], origins=[0, 1])
    assert np.isfinite(v[0]) and math.isnan(v[1])
    assert oracle.history[0].similarity > 0.5
    with pytest.raises(ConfigError, match="start molecule"):
        Oracle("qed", constraints=["sim>=0.5"])
    with pytest.raises(InvalidSmilesError):
        Oracle("qed", starts=["C1CC"])


# -- gradient optimizer on the toy decoder -------------------------------------------


def test_gradient_ascent_finds_the_longest_allowed_chain(chain):
    vae, predictor = chain
    oracle = Oracle("heavy_atoms", budget=200, constraints=["heavy_atoms<=20"])
    cfg = GradientConfig(n_starts=32, steps=40, lr=0.1, decode_every=5, prior_weight=0.0)
    run = optimize_gradient(vae, oracle, predictor, cfg, seed=0)
    assert oracle.top(1)[0].smiles == "C" * 20
    assert run.decoded == 32 * 9 and oracle.counts["infeasible"] > 0
    steps = [s for _, s, _ in run.trajectory]
    assert min(steps) == 0 and max(steps) == 40


def test_prior_penalty_and_trust_region_hold_z_back(chain):
    vae, predictor = chain

    def best(**kw):
        oracle = Oracle("heavy_atoms")
        optimize_gradient(vae, oracle, predictor, GradientConfig(n_starts=8, steps=40, lr=0.1, decode_every=40, **kw), seed=0)
        return max(len(r.smiles) for r in oracle.history)

    free = best(prior_weight=0.0)
    assert best(prior_weight=0.0, trust_radius=0.5) < free  # z0 moves at most 0.5: chains grow by <= 2 atoms
    assert best(prior_weight=50.0) < free


def test_constraint_penalty_keeps_the_ascent_inside_the_cap(chain):
    vae, predictor = chain

    def lengths(weight):
        oracle = Oracle("heavy_atoms", constraints=["heavy_atoms<=20"])
        cfg = GradientConfig(n_starts=16, steps=40, lr=0.3, decode_every=2, prior_weight=0.0, constraint_weight=weight)
        run = optimize_gradient(vae, oracle, predictor, cfg, seed=0)
        return [len(s) for _, step, s in run.trajectory if step >= 30], oracle

    free, free_oracle = lengths(0.0)
    kept, kept_oracle = lengths(5.0)
    assert max(free) >= 30  # unaware of the cap, the ascent runs far past it
    assert max(kept) <= 23 and np.median(kept) >= 18  # aware of it, it stays at the cap
    assert kept_oracle.top(1)[0].smiles == "C" * 20
    assert kept_oracle.counts["infeasible"] < free_oracle.counts["infeasible"]


def test_refits_learn_the_constrained_property(chain):
    vae, _ = chain
    predictor = _chain_predictor(vae, names=("logp",))
    oracle = Oracle("logp", budget=100, constraints=["heavy_atoms<=20"])
    cfg = GradientConfig(n_starts=16, steps=10, lr=0.1, decode_every=1, rounds=2, refit=True, prior_weight=0.0,
                         predictor={"epochs": 40, "model": {"hidden": 16, "members": 2}})
    run = optimize_gradient(vae, oracle, predictor, cfg, seed=0)
    assert run.predictor.model.names == ["logp", "heavy_atoms"]
    assert run.reports[-1]["spearman"]["heavy_atoms"] > 0.8
    cfg.constraint_weight = 0.0
    assert optimize_gradient(vae, Oracle("logp", budget=100, constraints=["heavy_atoms<=20"]), predictor, cfg, seed=0).predictor.model.names == ["logp"]


class LossyEncodeVAE(ChainVAE):
    """Its encoder forgets everything (every molecule -> z = 0, i.e. C6): only the decoded-from z keeps an elite."""

    def encode(self, smiles, **kwargs):
        return np.zeros((len(smiles), self.config.latent_dim), dtype=np.float32), list(range(len(smiles)))


@pytest.mark.parametrize("elite_latent", ["decoded", "encoded"])
def test_elite_restarts_from_the_latent_the_elite_was_decoded_from(chain, elite_latent):
    _, predictor = chain
    vae = LossyEncodeVAE()
    oracle = Oracle("heavy_atoms")
    cfg = GradientConfig(n_starts=8, steps=1, lr=1e-4, decode_every=1, rounds=2, elite_fraction=1.0, elite_copies=4,
                         start_noise=0.0, elite_latent=elite_latent)
    run = optimize_gradient(vae, oracle, predictor, cfg, seed=0)
    first, restarts = run.trajectory[: 2 * 8], [s for _, _, s in run.trajectory[2 * 8 : 3 * 8]]
    top2 = sorted({s for _, _, s in first}, key=len)[-2:]
    assert len(top2[-1]) > 7  # the prior round found something better than C6
    if elite_latent == "decoded":
        assert sorted(set(restarts)) == sorted(top2) and restarts.count(top2[0]) == 4
    else:
        assert set(restarts) == {"C" * 6}


def test_target_objective_converges_to_the_target(chain):
    vae, predictor = chain
    oracle = Oracle("heavy_atoms=12", budget=100)
    optimize_gradient(vae, oracle, predictor, GradientConfig(n_starts=16, steps=30, lr=0.1, decode_every=5, prior_weight=0.0), seed=0)
    top = oracle.top(1)[0]
    assert top.smiles == "C" * 12 and top.score == 0.0


def test_online_predictor_with_refits_for_a_user_function(tmp_path):
    path = tmp_path / "length.py"
    path.write_text("def score(smiles):\n    return [float(len(s)) for s in smiles]\n")
    vae = ChainVAE()
    oracle = Oracle(f"{path}:score", budget=150)
    cfg = GradientConfig(n_starts=16, steps=20, lr=0.1, decode_every=5, rounds=3, refit=True, n_init=40, prior_weight=0.0,
                         predictor={"epochs": 30, "model": {"hidden": 32, "members": 2}})
    run = optimize_gradient(vae, oracle, None, cfg, seed=0)
    assert run.rounds == 3 and len(run.reports) == 3  # initial fit + two refits
    assert run.reports[-1]["n"] > run.reports[0]["n"]
    assert oracle.top(1)[0].score >= 25  # the initial design (prior, z0 ~ N(0,1)) rarely exceeds ~15 atoms


def test_missing_predictor_properties_is_a_config_error(chain):
    vae, predictor = chain
    with pytest.raises(ConfigError, match="needs \\['qed'\\]"):
        optimize_gradient(vae, Oracle("qed"), predictor, GradientConfig(n_starts=2, steps=1))
    with pytest.raises(ConfigError, match="gradient options: unknown key"):
        GradientConfig.from_dict({"n_start": 3})


def test_interrupted_run_still_writes_complete_outputs(tmp_path):
    path = tmp_path / "stop.py"
    path.write_text(
        "calls = []\n"
        "def score(smiles):\n"
        "    calls.append(smiles)\n"
        "    if len(calls) > 1: raise KeyboardInterrupt\n"
        "    return [float(len(s)) for s in smiles]\n"
    )
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        optimize(f"{path}:score", ChainVAE(), budget=500, options=dict(n_starts=8, steps=20, n_init=20, decode_every=1,
                 predictor={"epochs": 5, "model": {"hidden": 8, "members": 2}}), out_dir=out)
    frame = pd.read_csv(out / "molecules.csv")
    log = [json.loads(line) for line in (out / "oracle_log.jsonl").read_text().splitlines()]
    assert len(frame) == len([r for r in log if r["status"] == "ok"]) > 0
    assert json.loads((out / "summary.json").read_text())["interrupted"] is True


# -- end to end with a real (tiny) VAE ---------------------------------------------


def test_optimize_end_to_end_outputs_and_reproducibility(tiny_vae, tmp_path):
    runs = [
        optimize("qed:1,sa:-0.1", tiny_vae, budget=40, constraints=["mw<=2000"], options=FAST, out_dir=tmp_path / f"r{i}", seed=3)
        for i in range(2)
    ]
    a, b = runs
    assert 0 < a.oracle.calls <= 40
    pd.testing.assert_frame_equal(a.frame, b.frame)
    frame = pd.read_csv(tmp_path / "r0" / "molecules.csv")
    assert list(frame.columns[:3]) == ["rank", "smiles", "objective"]
    assert set(chem.PROPERTIES) <= set(frame.columns) and {"similarity_to_start", "step", "call"} <= set(frame.columns)
    assert frame.objective.is_monotonic_decreasing and (frame.mw <= 2000).all()
    assert frame.objective.to_numpy() == pytest.approx(frame.qed - 0.1 * frame.sa, abs=1e-5)
    pictures = ("top_molecules.png",) if can_draw_molecules() else ()  # RDKit draws where libXrender is installed
    for name in (*pictures, "best_so_far.png", "oracle_log.jsonl", "summary.json"):
        assert (tmp_path / "r0" / name).stat().st_size > 0
    summary = json.loads((tmp_path / "r0" / "summary.json").read_text())
    assert summary["oracle_calls"] == a.oracle.calls and summary["seed"] == 3 and "r2" not in summary
    assert "predictor" in summary and summary["environment"]["torch"]


def test_start_molecule_and_min_similarity(tiny_vae):
    start = "CC(=O)Nc1ccc(O)cc1"
    result = optimize("qed", tiny_vae, budget=30, start=start, min_similarity=0.0, options=FAST, seed=0)
    frame = result.frame
    assert len(frame) > 0 and (frame.start == start).all()
    assert frame.similarity_to_start.between(0, 1).all()
    with pytest.raises(InvalidSmilesError):
        optimize("qed", tiny_vae, start="C1CC", options=FAST)
    with pytest.raises(ConfigError, match="unknown method"):
        optimize("qed", tiny_vae, method="annealing")


def test_sampled_decodes_find_more_neighbours_of_a_start_reproducibly(tiny_vae):
    start = "CC(=O)Nc1ccc(O)cc1"

    def run(**options):
        # The fixed rounds (explore="off"): the lead search samples its decodes whatever decode_temperature says.
        return optimize("qed", tiny_vae, budget=500, start=start, min_similarity=0.0, options={**FAST, "explore": "off", **options}, seed=0)

    greedy, sampled = run(), run(decode_temperature=1.0)
    # 16 copies x 3 decodes each; argmax decodes of nearby z repeat each other, samples mostly do not.
    assert sampled.oracle.calls > greedy.oracle.calls
    pd.testing.assert_frame_equal(sampled.frame, run(decode_temperature=1.0).frame)
    with pytest.raises(ConfigError, match="decode_temperature"):
        GradientConfig(decode_temperature=-0.5)


def test_cli_commands(tiny_vae, tmp_path):
    import typer
    from typer.testing import CliRunner

    from molgen.cli.optimize import optimize_command, predictor_app

    app = typer.Typer()
    app.add_typer(predictor_app, name="predictor")
    app.command("optimize")(optimize_command)
    model = tiny_vae.save(tmp_path / "vae.safetensors")
    runner = CliRunner()
    res = runner.invoke(app, ["predictor", "train", "--model", str(model), "--properties", "qed,logp", "--limit", "300",
                              "--epochs", "3", "--members", "2", "--hidden", "16", "--out", str(tmp_path / "pred")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "pred" / "report.json").read_text())["n_val"] > 0
    res = runner.invoke(app, ["optimize", "--model", str(model), "--objective", "qed:1,logp:-0.1", "--predictor", str(tmp_path / "pred"),
                              "--budget", "20", "--n-starts", "8", "--steps", "2", "--constraint", "mw<=5000", "-o", str(tmp_path / "out"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "out" / "molecules.csv")) > 0
