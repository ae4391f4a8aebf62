"""LatentPredictor: shapes, ensemble spread, fitting quality on known functions, safe save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from molgen.errors import CheckpointError, ConfigError, DataError
from molgen.models.predictor import LatentPredictor, LatentPredictorConfig
from molgen.optimize.predictor import (
    PredictorTrainingConfig,
    fit_predictor,
    load_predictor,
    save_predictor,
)
from molgen.utils.checkpoint import save_checkpoint


def _data(n=600, d=8, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, d)).astype(np.float32)
    # Two targets on very different scales: standardisation inside the model must handle both.
    y = np.stack([100 + 30 * z[:, 0] - 20 * z[:, 1] ** 2, 0.01 * np.tanh(z[:, 2])], axis=1)
    return z, y


def test_forward_shapes_and_member_spread():
    model = LatentPredictor(LatentPredictorConfig(latent_dim=8, names=["a", "b"], members=4, hidden=16))
    z = torch.randn(5, 8)
    assert model(z).shape == (4, 5, 2)
    mean, std = model.predict(z)
    assert mean.shape == std.shape == (5, 2)
    assert bool((std > 0).all()), "independently initialised members must disagree"
    outputs = model.as_dict(z)
    assert set(outputs) == {"a", "b"} and outputs["a"].shape == (4, 5)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError):
        LatentPredictorConfig(latent_dim=8, names=[])
    with pytest.raises(ConfigError):
        LatentPredictorConfig.from_dict({"latent_dim": 8, "names": ["a"], "width": 3})
    with pytest.raises(ConfigError):
        LatentPredictorConfig(latent_dim=8, names=["a", "a"])


def test_fit_learns_known_functions_with_high_heldout_r2():
    z, y = _data()
    trained = fit_predictor(z, y, ["big", "tiny"], PredictorTrainingConfig(epochs=80, model={"hidden": 64, "members": 3}))
    assert trained.report.n_val == 60 and trained.report.n_train == 540
    assert trained.report.r2["big"] > 0.9
    assert trained.report.r2["tiny"] > 0.8
    assert trained.report.spearman["big"] > 0.9
    assert trained.report.weak == []
    with torch.no_grad():
        mean, _ = trained.model.predict(torch.from_numpy(z[:50]))
    # Outputs are in the targets' own units, not standardised ones.
    assert abs(float(mean[:, 0].mean()) - float(y[:50, 0].mean())) < 10


def test_noise_targets_are_flagged_weak(caplog):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(300, 8)).astype(np.float32)
    y = rng.normal(size=(300, 1))
    trained = fit_predictor(z, y, ["noise"], PredictorTrainingConfig(epochs=5, model={"hidden": 16, "members": 2}))
    assert trained.report.weak == ["noise"]
    assert "WARNING" in trained.report.summary()
    assert "noise below R2" in trained.report.summary()
    assert caplog.text == ""  # reported once, by whoever uses the predictor (optimize() warns, the CLI prints), not logged here too


def test_nan_rows_are_dropped_and_too_few_rows_refused():
    z, y = _data(n=40)
    y[:35, 0] = np.nan
    with pytest.raises(DataError, match="only 5 labelled"):
        fit_predictor(z, y, ["big", "tiny"], PredictorTrainingConfig(epochs=2))


def test_save_load_round_trip(tmp_path):
    z, y = _data(n=200)
    trained = fit_predictor(z, y, ["big", "tiny"], PredictorTrainingConfig(epochs=3, model={"hidden": 16, "members": 2}))
    trained.meta = {"labels": "test"}
    path = save_predictor(tmp_path / "p.safetensors", trained)
    loaded = load_predictor(path, latent_dim=8)
    zt = torch.from_numpy(z[:10])
    with torch.no_grad():
        assert torch.allclose(trained.model.predict(zt)[0], loaded.model.predict(zt)[0])
    assert loaded.report.r2 == pytest.approx(trained.report.r2)
    assert loaded.meta["labels"] == "test"
    # A folder holding predictor.safetensors works too.
    save_predictor(tmp_path / "run" / "predictor.safetensors", trained)
    assert load_predictor(tmp_path / "run").model.names == ["big", "tiny"]
    with pytest.raises(CheckpointError, match="16-d latents|8-d latents"):
        load_predictor(path, latent_dim=16)


def test_load_refuses_other_checkpoint_kinds(tmp_path):
    path = save_checkpoint(tmp_path / "vae.safetensors", {"w": torch.zeros(2)}, {"kind": "seq_vae"})
    with pytest.raises(CheckpointError, match="not a latent predictor"):
        load_predictor(path)
