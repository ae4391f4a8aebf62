"""Elite restarts of the gradient optimizer: diverse elites and the yield-driven restart noise.

Toy decoders whose molecules are known from z: z[0] sets a carbon chain's
length and (in the two-family toy) the sign of z[1] puts a phenyl ring on it,
so the best molecules and their fingerprint families are known in advance.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from molgen.errors import ConfigError
from molgen.optimize import (
    GradientConfig,
    Oracle,
    PredictorTrainingConfig,
    fit_predictor,
    optimize_gradient,
)


class ChainVAE:
    """z -> 'C' * round(3 z0 + 6), or with ``families`` and z1 > 0, 'c1ccccc1' + that chain (6 more atoms)."""

    device = torch.device("cpu")
    meta = {"path": "chain-toy"}

    def __init__(self, families: bool = False) -> None:
        self.config = SimpleNamespace(latent_dim=4)
        self.families = families

    def length(self, z) -> np.ndarray:
        return np.clip(np.round(np.asarray(z)[:, 0] * 3 + 6), 0, 30).astype(int)

    def decode(self, z, options=None, seed=0, **kwargs):
        z = np.asarray(z)
        out = []
        for k, ring in zip(self.length(z), z[:, 1] > 0):
            out.append(None if k == 0 else "C" * k + ("c1ccccc1" if self.families and ring else ""))  # canonical SMILES
        return out

    def encode(self, smiles, **kwargs):
        raise AssertionError("elite restarts start from the decoded-from latents; nothing is encoded")


@pytest.fixture(scope="module")
def predictor():
    z = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    y = ChainVAE().length(z).astype(np.float32)[:, None]
    return fit_predictor(z, y, ["heavy_atoms"], PredictorTrainingConfig(epochs=20, model={"hidden": 16, "members": 2}))


def _restart_molecules(predictor, **options) -> tuple[list[str], list[str]]:
    """Round 0: 64 prior starts; round 1: one exact restart (no noise, no ascent) from each of 4 elites."""
    oracle = Oracle("heavy_atoms")
    cfg = GradientConfig(n_starts=64, steps=1, lr=1e-6, decode_every=1, rounds=2, elite_fraction=1.0, elite_copies=16,
                         start_noise=0.0, **options)
    run = optimize_gradient(ChainVAE(families=True), oracle, predictor, cfg, seed=0)
    first = [s for _, step, s in run.trajectory if step <= 1]
    restarts = [s for _, step, s in run.trajectory if step == 2]  # round 1 after its one (negligible) step: the restarts
    assert len(restarts) == 64 and run.round_log[1]["elites"] == 4
    return first, restarts


def test_diverse_elites_cover_more_than_one_family(predictor):
    first, plain = _restart_molecules(predictor, elite_max_similarity=1.0)
    ranked = sorted(set(first), key=len, reverse=True)
    assert any("c1" in s for s in ranked) and any(not "c1" in s for s in ranked)
    # Without diversity the 4 elites are the 4 longest molecules, all phenyl chains (6 atoms ahead of any alkane).
    assert set(plain) == set(ranked[:4]) and all("c1" in s for s in plain)
    # Tanimoto between two phenyl chains >= 0.7, between a phenyl chain and an alkane ~0.4: at most 2 per family.
    _, diverse = _restart_molecules(predictor, elite_max_similarity=0.6, elite_per_cluster=2)
    phenyl = sorted({s for s in ranked if "c1" in s}, key=len, reverse=True)
    alkanes = sorted({s for s in ranked if not "c1" in s}, key=len, reverse=True)
    assert set(diverse) == set(phenyl[:2] + alkanes[:2])
    assert all(diverse.count(s) == 16 for s in set(diverse))


def _noise_run(predictor, **options):
    oracle = Oracle("heavy_atoms")
    cfg = GradientConfig(n_starts=4, steps=1, lr=1e-6, decode_every=1, rounds=10, elite_fraction=1.0, elite_copies=1,
                         start_noise=0.01, **options)
    run = optimize_gradient(ChainVAE(), oracle, predictor, cfg, seed=1)
    return run.round_log, oracle


def test_low_yield_rounds_raise_the_restart_noise_and_a_good_round_resets_it(predictor):
    off, off_oracle = _noise_run(predictor, restart_min_yield=0.0)
    assert [e["noise"] for e in off] == [0.01] * 10
    log, oracle = _noise_run(predictor, restart_min_yield=0.2, restart_noise_growth=4.0, restart_max_noise=0.5)
    assert all(e["decoded"] == 8 for e in log)  # 4 starts decoded before and after their one step
    for prev, cur in zip(log[1:], log[2:]):
        raised = min(prev["noise"] * 4.0, 0.5) if prev["yield"] < 0.2 else 0.01
        assert cur["noise"] == pytest.approx(raised)
    assert log[1]["noise"] == 0.01  # round 0 (prior starts) never changes the noise
    assert max(e["noise"] for e in log) >= 0.16 and any(e["noise"] == 0.01 for e in log[2:])  # raised, and reset after a good round
    # Copies of the elites at sigma 0.01 decode to the elites again; the raised noise finds new, longer chains.
    assert sum(e["new_calls"] for e in off[1:]) <= 1 < sum(e["new_calls"] for e in log[1:])
    assert oracle.top(1)[0].score > off_oracle.top(1)[0].score


def test_defaults_turn_both_on():
    cfg = GradientConfig()
    assert (cfg.elite_max_similarity, cfg.elite_per_cluster, cfg.restart_min_yield) == (0.5, 8, 0.3)


@pytest.mark.parametrize(
    "options, match",
    [({"elite_max_similarity": 1.5}, "elite_max_similarity"), ({"restart_min_yield": -0.1}, "restart_min_yield"),
     ({"restart_noise_growth": 0.5}, "restart_noise_growth"), ({"elite_per_cluster": 0}, "elite_per_cluster")],
)
def test_bad_restart_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        GradientConfig(**options)
