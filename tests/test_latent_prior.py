"""Fitted latent priors: the mixture's sampling and density, the checkpoint round trip, and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from molgen.cli import main
from molgen.errors import CheckpointError, ConfigError, DataError
from molgen.generate.prior import TENSOR_PREFIX, LatentPrior, fit_latent_prior
from molgen.vae import MoleculeVAE


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _two_blobs() -> LatentPrior:
    means = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])
    scale = torch.stack([torch.eye(2) * 0.5, torch.tensor([[1.0, 0.0], [0.8, 0.6]])])
    return LatentPrior(torch.tensor([0.25, 0.75]), means, scale)


def test_mixture_samples_have_the_mixture_moments_and_are_seeded():
    prior = _two_blobs()
    z = prior.sample(40000, torch.Generator().manual_seed(0))
    right = z[:, 0] > 0
    assert right.float().mean().item() == pytest.approx(0.75, abs=0.01)
    torch.testing.assert_close(z[right].mean(0), torch.tensor([4.0, 1.0]), atol=0.03, rtol=0)
    # Covariance of the second component is L L^T = [[1, 0.8], [0.8, 1]].
    cov = torch.cov(z[right].T)
    torch.testing.assert_close(cov, torch.tensor([[1.0, 0.8], [0.8, 1.0]]), atol=0.04, rtol=0)
    torch.testing.assert_close(torch.cov(z[~right].T), torch.eye(2) * 0.25, atol=0.02, rtol=0)
    again = prior.sample(40000, torch.Generator().manual_seed(0))
    assert torch.equal(z, again)


def test_log_prob_is_the_mixture_density():
    prior = _two_blobs()
    point = torch.tensor([[4.0, 1.0]])
    # At the second mean: 0.75 * N(0; 0, LL^T), |LL^T| = 0.36; the first blob adds nothing there.
    expected = np.log(0.75) - np.log(2 * np.pi) - 0.5 * np.log(0.36)
    assert prior.log_prob(point).item() == pytest.approx(expected, abs=1e-6)


def test_inconsistent_tensors_are_refused():
    with pytest.raises(CheckpointError, match="shapes"):
        LatentPrior(torch.ones(3), torch.zeros(2, 4), torch.eye(4).expand(2, 4, 4))
    with pytest.raises(CheckpointError, match="weights"):
        LatentPrior(torch.tensor([1.0, -1.0]), torch.zeros(2, 4), torch.eye(4).expand(2, 4, 4).clone())


def test_fitted_prior_follows_the_codes_and_survives_a_save(tiny_run, tiny_smiles, tmp_path):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    prior = fit_latent_prior(vae, tiny_smiles, components=2, seed=0)
    codes, _ = vae.encode(tiny_smiles)
    draws = prior.sample(20000, torch.Generator().manual_seed(1)).numpy()
    # The mixture reproduces the codes' mean and spread, which N(0, I) does not.
    np.testing.assert_allclose(draws.mean(0), codes.mean(0), atol=0.05)
    np.testing.assert_allclose(draws.std(0), np.sqrt(codes.var(0) + 1e-4), rtol=0.1, atol=0.01)
    assert prior.info["molecules"] == len(codes) and prior.info["components"] == 2
    vae.latent_prior = prior
    path = vae.save(tmp_path / "with_prior.safetensors")
    loaded = MoleculeVAE.load(path, device="cpu")
    assert loaded.latent_prior is not None and loaded.meta["latent_prior"]["components"] == 2
    torch.testing.assert_close(loaded.latent_prior.scale_tril, prior.scale_tril)
    # auto uses the fitted prior; standard ignores it; both are reproducible.
    fitted = loaded.sample(30, seed=3)
    assert fitted == loaded.sample(30, seed=3, prior="fitted")
    assert loaded.sample(30, seed=3, prior="standard") == MoleculeVAE.load(tiny_run, device="cpu").sample(30, seed=3)
    assert fitted != loaded.sample(30, seed=3, prior="standard")


def test_prior_errors(tiny_run, tiny_smiles, tmp_path):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    with pytest.raises(ConfigError, match="no fitted latent prior"):
        vae.sample(4, prior="fitted")
    with pytest.raises(ConfigError, match="unknown prior"):
        vae.sample(4, prior="gmm")
    with pytest.raises(DataError, match="too few"):
        fit_latent_prior(vae, tiny_smiles[:20], components=4)
    # A checkpoint whose prior lost a tensor, or whose prior has the wrong width, is refused by name.
    vae.latent_prior = fit_latent_prior(vae, tiny_smiles, components=1)
    path = vae.save(tmp_path / "p.safetensors")
    for broken, message in (("weights", "incomplete"), ("means", "dimensions")):
        from molgen.utils.checkpoint import load_checkpoint, save_checkpoint

        tensors, meta = load_checkpoint(path)
        if broken == "weights":
            del tensors[TENSOR_PREFIX + "weights"]
        else:
            d = vae.config.latent_dim + 1
            tensors[TENSOR_PREFIX + "means"] = torch.zeros(1, d)
            tensors[TENSOR_PREFIX + "scale_tril"] = torch.eye(d).unsqueeze(0)
        bad = save_checkpoint(tmp_path / f"bad_{broken}.safetensors", tensors, meta)
        with pytest.raises(CheckpointError, match=message):
            MoleculeVAE.load(bad, device="cpu")


def test_fit_prior_and_sample_commands(tiny_run, tiny_smiles, tmp_path, capsys):
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(tiny_smiles + ["not_a_smiles"]) + "\n")
    out = tmp_path / "prior.safetensors"
    code, _, err = run(capsys, "fit-prior", "--model", tiny_run, "--data", data, "--components", 2, "-o", out)
    assert code == 0, err
    assert "skipped 1" in err, err
    assert "fitted 2 Gaussian(s)" in err and MoleculeVAE.load(out, device="cpu").latent_prior.components == 2
    samples = tmp_path / "s.csv"
    code, _, err = run(capsys, "sample", "--model", out, "-n", 32, "-o", samples, "--top-p", 0.9, "--device", "cpu")
    assert code == 0, err
    assert len(pd.read_csv(samples)) > 0
    code, _, err = run(capsys, "sample", "--model", tiny_run, "-n", 4, "-o", samples, "--prior", "fitted", "--device", "cpu")
    assert code == 2 and "fit-prior" in err and "Traceback" not in err
    code, _, err = run(capsys, "sample", "--model", tiny_run, "-n", 4, "-o", samples, "--top-p", 0, "--device", "cpu")
    assert code == 2 and "top_p" in err
    code, _, err = run(capsys, "fit-prior", "--model", tiny_run, "--data", data, "--components", 0, "-o", out)
    assert code == 2 and "components" in err


def test_tune_sampling_picks_the_closest_novel_temperature_and_sampling_uses_it(tiny_run, tmp_path, capsys):
    from molgen.datasets import default_training_smiles
    from molgen.generate.tuning import tune_temperature

    vae = MoleculeVAE.load(tiny_run, device="cpu")
    validation = default_training_smiles(limit=1400)[400:]
    with pytest.raises(ConfigError, match="novelty floor"):
        tune_temperature(vae, validation, [1.0], n=150, min_novelty=1.01)
    with pytest.raises(DataError, match="too few"):
        tune_temperature(vae, validation[:10], [1.0], n=150)

    data = tmp_path / "val.smi"
    data.write_text("\n".join(validation) + "\n")
    out = tmp_path / "tuned.safetensors"
    args = ("tune-sampling", "--model", tiny_run, "--validation", data, "--temperatures", "1.0,0.5", "-n", 150, "-o", out)
    code, table, err = run(capsys, *args, "--min-novelty", 0)
    assert code == 0, err
    tuned = MoleculeVAE.load(out, device="cpu")
    record = tuned.meta["sampling"]
    trials = record["trials"]
    assert [t["temperature"] for t in trials] == [0.5, 1.0]
    assert all(t["fcd"] > 0 and 0 < t["valid"] <= 1 and 0 <= t["novelty"] <= 1 for t in trials)
    chosen = record["temperature"]
    assert chosen == min(trials, key=lambda t: t["fcd"])["temperature"]
    assert f"chose temperature {chosen:g}" in err and "FCD" in table
    assert tuned.default_temperature == chosen
    assert tuned.sample(20, seed=2) == vae.sample(20, seed=2, temperature=chosen)
    code, info, _ = run(capsys, "info", "--model", out)
    assert code == 0 and f'"sampling_temperature": {chosen}' in info and '"latent_prior": null' in info
    # A new prior invalidates the temperature tuned for the old one.
    refit = tmp_path / "refit.safetensors"
    code, _, err = run(capsys, "fit-prior", "--model", out, "--data", data, "--components", 1, "-o", refit)
    assert code == 0 and "dropped" in err and MoleculeVAE.load(refit, device="cpu").default_temperature == 1.0
    code, _, err = run(capsys, "tune-sampling", "--model", tiny_run, "--validation", data, "--temperatures", "0.5,hot", "-o", out)
    assert code == 2 and "comma-separated" in err


def test_encoding_sorts_by_length_and_returns_rows_in_input_order(tiny_run, tiny_smiles):
    vae = MoleculeVAE.load(tiny_run)
    mols = ["C", *tiny_smiles[:40], "CCO", "c1ccc2ccccc2c1"]  # short and long rows mixed
    z, kept = vae.encode(mols, batch_size=8)
    assert kept == list(range(len(mols)))
    alone = np.concatenate([vae.encode([m])[0] for m in mols[::7]])
    np.testing.assert_allclose(z[::7], alone, atol=1e-5)
    # Seeded posterior samples draw their noise batch by batch in input order, whatever the length sort did.
    a, _ = vae.encode(mols, sample=True, seed=5, batch_size=8)
    b, _ = vae.encode(mols, sample=True, seed=5, batch_size=8)
    np.testing.assert_array_equal(a, b)
    noise = a - z
    assert np.abs(noise).max() > 0
    first, _ = vae.encode(mols[:8], sample=True, seed=5, batch_size=8)
    np.testing.assert_allclose(first, a[:8], atol=1e-5)


def test_em_progress_counts_iterations_without_changing_the_fit():
    from sklearn.mixture import GaussianMixture

    from molgen.generate.prior import _mixture

    class Count:
        done = 0

        def advance(self, n=1, **stats):
            self.done += n

    codes = np.random.default_rng(0).normal(size=(400, 3)) + np.repeat(np.eye(3) * 4, [150, 150, 100], axis=0)
    plain = GaussianMixture(3, covariance_type="full", reg_covar=1e-4, max_iter=50, random_state=1).fit(codes)
    counted = _mixture(3, 1e-4, 50, 1)
    counted.progress = Count()
    counted.fit(codes)
    assert counted.progress.done == counted.n_iter_ == plain.n_iter_ > 1
    np.testing.assert_array_equal(counted.means_, plain.means_)
    np.testing.assert_array_equal(counted.covariances_, plain.covariances_)


def test_diagonal_mixture_samples_and_density():
    means = torch.tensor([[-4.0, 0.0], [4.0, 1.0]])
    scale = torch.tensor([[0.5, 0.5], [1.0, 2.0]])
    prior = LatentPrior(torch.tensor([0.25, 0.75]), means, scale)
    assert prior.diagonal
    z = prior.sample(40000, torch.Generator().manual_seed(0))
    right = z[:, 0] > 0
    assert right.float().mean().item() == pytest.approx(0.75, abs=0.01)
    torch.testing.assert_close(z[right].std(0), torch.tensor([1.0, 2.0]), atol=0.04, rtol=0)
    torch.testing.assert_close(z[~right].mean(0), torch.tensor([-4.0, 0.0]), atol=0.03, rtol=0)
    assert torch.equal(z, prior.sample(40000, torch.Generator().manual_seed(0)))
    # At the second mean: 0.75 * N(0; 0, diag(1, 4)) = 0.75 / (2 pi * 2), the first component adds nothing.
    assert prior.log_prob(torch.tensor([[4.0, 1.0]])).item() == pytest.approx(np.log(0.75 / (4 * np.pi)), abs=1e-6)
    # The expanded form equals the direct sum of per-component diagonal Gaussians.
    rows = prior.sample(600, torch.Generator().manual_seed(1)).double()
    direct = torch.distributions.Independent(torch.distributions.Normal(means.double(), scale.double()), 1).log_prob(rows[:, None])
    torch.testing.assert_close(prior.log_prob(rows), torch.logsumexp(direct + torch.tensor([0.25, 0.75]).double().log(), 1))
    with pytest.raises(CheckpointError, match="positive"):
        LatentPrior(torch.ones(2), means, torch.zeros(2, 2))


def test_posterior_prior_stores_the_encoder_gaussians(tiny_run, tiny_smiles, tmp_path, capsys):
    from molgen.generate.prior import fit_posterior_prior

    vae = MoleculeVAE.load(tiny_run, device="cpu")
    prior = fit_posterior_prior(vae, tiny_smiles, components=50, noise=1.5, seed=0)
    assert prior.diagonal and prior.components == 50 and prior.info["kind"] == "posterior"
    # Each component is one molecule's posterior: its mean is the molecule's code, its scale 1.5 x the encoder's.
    picked = [tiny_smiles[i] for i in np.sort(np.random.default_rng(0).choice(len(tiny_smiles), 50, replace=False))]
    mu, logvar, kept = vae.posterior(picked)
    assert kept == list(range(50))
    torch.testing.assert_close(prior.means, mu)
    torch.testing.assert_close(prior.scale_tril, logvar.mul(0.5).exp() * 1.5)
    np.testing.assert_allclose(vae.encode(picked)[0], mu.numpy())
    with pytest.raises(ConfigError, match="noise"):
        fit_posterior_prior(vae, tiny_smiles, components=5, noise=0)
    # The CLI writes it; the checkpoint keeps it diagonal; sampling draws from it reproducibly.
    data = tmp_path / "mols.smi"
    data.write_text("\n".join(tiny_smiles) + "\n")
    out = tmp_path / "posterior.safetensors"
    code, _, err = run(capsys, "fit-prior", "--model", tiny_run, "--data", data, "--kind", "posterior", "--components", 40, "--noise", 1.2, "-o", out)
    assert code == 0, err
    assert "posteriors of 40 molecules" in err
    loaded = MoleculeVAE.load(out, device="cpu")
    assert loaded.latent_prior.diagonal and loaded.latent_prior.scale_tril.shape == (40, vae.config.latent_dim)
    assert loaded.meta["latent_prior"]["noise"] == 1.2
    assert loaded.sample(20, seed=4) == loaded.sample(20, seed=4) != loaded.sample(20, seed=4, prior="standard")
    code, _, err = run(capsys, "fit-prior", "--model", tiny_run, "--data", data, "--kind", "vamp", "-o", out)
    assert code == 2 and "prior kind" in err
