"""Conditional sequence VAE: condition specs, requests and their errors, training, sampling, the CLI, and
the unconditional default model unchanged by it."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH

from molgen.cli import main
from molgen.errors import ConfigError
from molgen.models.seq_vae import SeqVAE, SeqVAEConfig
from molgen.vae import MoleculeVAE
from molgen.vae.conditioning import (
    ConditionSpec,
    ConditionWarning,
    parse_property_names,
)

# Drawn from data/default_model.safetensors (run 10, its fitted prior and temperature 0.3) with sample(16, seed=3).
DEFAULT_MODEL_SEED3 = [  # fp32 decoding, so the same on every CPU
    "CC(=O)N1C=CC=C(C(C)NCc2c(C)nc3ccccn23)C1",
    "O=C(NCc1cnn(CCc2ccccc2)c1)c1ccncc1F",
    "CC(C)Cn1cc(NC(=O)C2CCc3ncccc3C2)cn1",
    "Cc1ccc2c(-c3cn4ccccc4n3)cnc(C)c2c1",
]


def _spec():
    rows = np.array([[x, 0.1 * x, 5.0 - x] for x in np.linspace(0.0, 4.0, 41)])
    return ConditionSpec.fit(["logp", "qed", "sa"], rows)


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory, tiny_smiles):
    from molgen.vae.training import VAETrainingConfig, train_vae

    out = tmp_path_factory.mktemp("cond_run")
    config = VAETrainingConfig(
        model=TINY_ARCH,
        train=dict(epochs=1, batch_size=32, lr=3e-3, seed=0),
        kl=dict(kind="linear", beta=0.5, warmup_steps=10),
        val_fraction=0.1,
        conditions=["logp", "qed"],
    )
    train_vae(tiny_smiles[:200], out, config, device="cpu", show_progress=False)
    return out


def test_spec_statistics_normalisation_and_round_trip():
    spec = _spec()
    assert spec.mean == pytest.approx([2.0, 0.2, 3.0])
    assert spec.low == pytest.approx([0.0, 0.0, 1.0]) and spec.high == pytest.approx([4.0, 0.4, 5.0])
    z = spec.normalize(np.array([[2.0, 0.2, 3.0], [np.nan, np.nan, np.nan]]))
    assert np.allclose(z, 0.0)  # the mean, and NaN (invalid molecule) mapped to the mean
    sd = np.std(np.linspace(0.0, 4.0, 41))
    assert spec.normalize(np.array([[4.0, 0.2, 3.0]]))[0, 0] == pytest.approx(2.0 / sd, rel=1e-5)
    assert ConditionSpec.from_dict(spec.to_dict()) == spec


def test_unrequested_properties_come_from_training_neighbours():
    spec = _spec()
    rows = spec.request_matrix("logp=3.5", 200, seed=0)
    assert np.all(rows[:, 0] == 3.5)
    # In the stored data qed = logp / 10 and sa = 5 - logp: the neighbours of logp 3.5 agree.
    assert abs(rows[:, 1].mean() - 0.35) < 0.07 and abs(rows[:, 2].mean() - 1.5) < 0.7
    assert np.array_equal(rows, spec.request_matrix({"logp": 3.5}, 200, seed=0))


@pytest.mark.parametrize(
    "request_text, message",
    [
        ("foo=1", "unknown property 'foo'"),
        ("mw=300", "conditioned on logp, qed, sa, not on 'mw'"),
        ("logp", "not NAME=VALUE"),
        ("logp=abc", "not a number"),
        ("logp=1,logp=2", "requested twice"),
        ("logp=nan", "must be finite"),
        (",", "empty condition"),
    ],
)
def test_bad_requests_give_one_line_errors(request_text, message):
    with pytest.raises(ConfigError, match=message) as info:
        _spec().parse(request_text)
    assert "\n" not in str(info.value)


def test_out_of_range_requests_are_accepted_with_a_warning():
    spec = _spec()
    with pytest.warns(ConditionWarning, match=r"logp=9 is outside the training range \[0, 4\]"):
        rows = spec.request_matrix("logp=9", 5)
    assert np.all(rows[:, 0] == 9.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec.request_matrix("logp=3.9,qed=0.1", 5)  # inside: no warning


def test_property_names_are_validated():
    assert parse_property_names("LogP, qed,sa") == ["logp", "qed", "sa"]
    with pytest.raises(ConfigError, match="unknown property 'bar'; known properties: .*logp"):
        parse_property_names("logp,bar")
    with pytest.raises(ConfigError, match="repeat"):
        parse_property_names(["qed", "qed"])


def test_conditional_model_needs_and_uses_its_condition():
    torch.manual_seed(0)
    cfg = SeqVAEConfig(vocab_size=10, embed_dim=8, encoder_hidden=8, decoder_hidden=16, latent_dim=4, max_length=8, cond_dim=2)
    model = SeqVAE(cfg).eval()
    z = torch.randn(3, 4)
    inputs = torch.randint(4, 10, (3, 5))
    with pytest.raises(ConfigError, match="conditional"):
        model.context(z)
    a = model.decode_logits(model.context(z, torch.zeros(3, 2)), inputs)
    b = model.decode_logits(model.context(z, torch.ones(3, 2)), inputs)
    assert a.shape == (3, 5, 10) and (a - b).abs().max() > 1e-4
    unconditional = SeqVAE(SeqVAEConfig(vocab_size=10, embed_dim=8, encoder_hidden=8, decoder_hidden=16, latent_dim=4, max_length=8))
    with pytest.raises(ConfigError, match="unconditional"):
        unconditional.context(z, torch.zeros(3, 2))


def test_trained_conditional_model_round_trips_and_samples_to_order(cond_run):
    vae = MoleculeVAE.load(cond_run, device="cpu")
    assert vae.config.cond_dim == 2 and vae.conditions.names == ["logp", "qed"]
    assert vae.model.to_mu.in_features == 2 * TINY_ARCH["encoder_hidden"] + 2
    first = vae.sample(30, seed=5, condition="logp=3.0")
    assert first == vae.sample(30, seed=5, condition="logp=3.0")
    assert first != vae.sample(30, seed=5, condition="logp=0.5")
    assert len(vae.sample(10, seed=1)) == 10  # no request: conditions drawn from the training data
    recon = vae.reconstruct(["CCOc1ccccc1C(=O)NCC1CCCO1"])
    assert len(recon.outputs) == 1


def test_unconditional_model_rejects_a_condition(tiny_run):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    assert vae.conditions is None
    with pytest.raises(ConfigError, match="unconditional"):
        vae.sample(5, condition="logp=2")


def test_cli_condition_errors_and_warnings(cond_run, tmp_path, capsys):
    out = tmp_path / "s.csv"
    code = main(["sample", "--model", str(cond_run), "-n", "8", "-o", str(out), "--condition", "foo=1", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown property 'foo'" in err and "Traceback" not in err
    code = main(["sample", "--model", str(cond_run), "-n", "8", "-o", str(out), "--condition", "logp=40", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 0 and "warning:" in err and "outside the training range" in err and out.exists()
    code = main(["train", "--out", str(tmp_path / "r"), "--condition-on", "logp,nope", "--limit", "20"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown property 'nope'" in err


def test_default_model_loads_and_samples_as_before():
    vae = MoleculeVAE.load(device="cpu")
    assert vae.config.arch == "gru" and vae.config.cond_dim == 0 and vae.conditions is None
    assert vae.latent_prior is not None and vae.default_temperature == 0.3
    assert vae.sample(16, seed=3, n_jobs=1, precision="fp32")[:4] == DEFAULT_MODEL_SEED3


def test_conditional_run_warm_starts_from_an_unconditional_model(tiny_run, tiny_smiles, tmp_path):
    from molgen.vae.training import VAETrainingConfig, _warm_start

    source = MoleculeVAE.load(tiny_run, device="cpu")
    cfg = SeqVAEConfig.from_dict(dict(source.config.to_dict(), cond_dim=2))
    target = MoleculeVAE(SeqVAE(cfg), source.vocab, {"conditions": _spec_two().to_dict()}, device="cpu")
    _warm_start(target, tiny_run)
    ids, lengths, _ = source.tokenize(tiny_smiles[:4])
    z = torch.randn(4, cfg.latent_dim)
    # The condition columns start at zero: before fine-tuning the model ignores c and equals its source.
    want = source.model.decode_logits(z, ids[:, :-1])
    got = target.model.decode_logits(target.model.context(z, torch.randn(4, 2)), ids[:, :-1])
    assert torch.allclose(want, got, atol=1e-5)
    mu, _ = target.model.encode(ids, lengths, torch.randn(4, 2))
    assert torch.allclose(mu, source.model.encode(ids, lengths)[0], atol=1e-5)
    assert VAETrainingConfig(conditions=["qed", "logp"]).conditions == ["qed", "logp"]


def _spec_two():
    return ConditionSpec.fit(["logp", "qed"], np.array([[1.0, 0.5], [3.0, 0.9]]))


def test_latent_dropout_decodes_from_the_prior_and_only_in_training():
    torch.manual_seed(0)
    cfg = SeqVAEConfig(vocab_size=10, embed_dim=8, encoder_hidden=8, decoder_hidden=16, latent_dim=4, max_length=8, cond_dim=2)
    model = SeqVAE(cfg)
    tokens = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 9, 2, 0], [1, 4, 4, 5, 2]])
    lengths = torch.tensor([5, 4, 5])
    cond = torch.randn(3, 2)

    def run(dropout: float, shift: float, train: bool = True):
        model.train(train)
        with torch.no_grad():
            model.to_mu.bias.add_(shift)
            out = model(tokens, lengths, cond=cond, latent_dropout=dropout, generator=torch.Generator().manual_seed(1))
            model.to_mu.bias.sub_(shift)
        return out

    # Every row decoded from a prior draw: moving the codes changes the KL but not the reconstruction.
    a, b = run(0.999999, 0.0), run(0.999999, 3.0)
    assert torch.allclose(a.recon, b.recon) and b.kl > a.kl + 1.0
    # Without it (and in evaluation, where it does nothing) the codes reach the decoder.
    assert not torch.allclose(run(0.0, 0.0).recon, run(0.0, 3.0).recon)
    assert not torch.allclose(run(0.999999, 0.0, train=False).recon, run(0.999999, 3.0, train=False).recon)


def test_latent_dropout_needs_a_conditional_model():
    from molgen.vae.training import VAETrainingConfig

    with pytest.raises(ConfigError, match="conditional"):
        VAETrainingConfig(latent_dropout=0.5)
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        VAETrainingConfig(conditions=["qed"], latent_dropout=1.0)
    assert VAETrainingConfig(conditions=["qed"], latent_dropout=0.5).latent_dropout == 0.5


def test_bo_retrains_a_conditional_model_on_its_own_properties(cond_run):
    from molgen.optimize.bo_config import BOConfig
    from molgen.optimize.bo_space import _Data
    from molgen.optimize.bo_retrain import _Tuner
    from molgen.vae import MoleculeVAE

    vae = MoleculeVAE.load(cond_run, device="cpu")
    smiles = ["CCOC(=O)c1ccccc1", "CCCCCCCC", "OCCO", "c1ccncc1"]
    data = _Data(4)
    data.add(torch.zeros(4, 4), [0.9, 0.1, 0.2, 0.3], smiles)
    tuner = _Tuner(vae, BOConfig(finetune_steps=4, finetune_batch=4), seed=0)
    facts = tuner.update(data)  # the model's forward needs each molecule's own logP and QED as its condition
    assert facts["molecules"] == 4 and math.isfinite(facts["loss_first"]) and math.isfinite(facts["loss_last"])
    assert any(not torch.equal(a, b) for a, b in zip(vae.model.parameters(), tuner.vae.model.parameters()))
