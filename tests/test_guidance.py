"""Classifier-free guidance: the "no condition" input, condition dropout in training, the guided decoder and its CLI."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH

from molgen.cli import main
from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions, decode_tokens
from molgen.generate.guidance import GuidedDecoder, check_guidance
from molgen.generate.request import Steering
from molgen.models.build import build_seq_vae
from molgen.models.seq_vae import SeqVAE, SeqVAEConfig
from molgen.vae import MoleculeVAE
from molgen.vae.conditioning import ConditionSpec

NAN = float("nan")


def _tiny(arch: str = "gru", null: bool = True, seed: int = 0):
    cfg = SeqVAEConfig(
        vocab_size=12, arch=arch, embed_dim=16, encoder_hidden=16, decoder_hidden=16, latent_dim=6,
        max_length=16, n_heads=2, cond_dim=2, null_condition=null,
    )  # fmt: skip
    torch.manual_seed(seed)
    return build_seq_vae(cfg).eval()


@pytest.fixture(scope="module")
def cfg_run(tmp_path_factory, tiny_smiles):
    from molgen.vae.training import VAETrainingConfig, train_vae

    out = tmp_path_factory.mktemp("cfg_run")
    config = VAETrainingConfig(
        model=TINY_ARCH,
        train=dict(epochs=1, batch_size=32, lr=3e-3, seed=0),
        kl=dict(kind="constant", beta=1.0),
        val_fraction=0.1,
        conditions=["logp", "qed"],
        condition_dropout=0.2,
    )
    train_vae(tiny_smiles[:200], out, config, device="cpu", show_progress=False)
    return out


def test_null_condition_is_one_flag_column_and_off_by_default():
    assert SeqVAEConfig.from_dict({"vocab_size": 10, "cond_dim": 3}).null_condition is False  # old checkpoints
    with pytest.raises(ConfigError, match="conditional"):
        SeqVAEConfig(vocab_size=10, null_condition=True)
    model = _tiny()
    assert model.to_mu.in_features == 2 * 16 + 3 and model.latent_to_hidden.in_features == 6 + 3
    z = torch.zeros(3, 6)
    h = model.context(z, torch.tensor([[0.5, -1.0], [NAN, NAN], [2.0, NAN]]))
    assert h[:, 6:].tolist() == [[0.5, -1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]  # any NaN: no condition
    with pytest.raises(ConfigError, match="without condition dropout"):
        _tiny(null=False).context(z, torch.full((3, 2), NAN))


@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_guidance_one_is_conditional_and_zero_is_unconditional_decoding(arch):
    model = _tiny(arch)
    torch.nn.init.normal_(model.latent_to_hidden.weight if arch == "gru" else model.context_to_input.weight, std=1.0)
    z = torch.randn(24, 6, generator=torch.Generator().manual_seed(0))
    h_cond = model.context(z, torch.randn(24, 2, generator=torch.Generator().manual_seed(1)))
    h_null = model.context(z, torch.full((24, 2), NAN))
    opts = DecodeOptions(precision="fp32")

    def run(decoder, h):
        return decode_tokens(decoder, h, opts, torch.Generator().manual_seed(7))

    plain = run(model, h_cond)
    assert torch.equal(run(GuidedDecoder(model, 1.0), h_cond), plain)
    assert torch.equal(run(GuidedDecoder(model, 0.0), h_cond), run(model, h_null))
    assert not torch.equal(run(GuidedDecoder(model, 4.0), h_cond), plain)


def test_guided_logits_extrapolate_from_unconditional_to_conditional():
    model = _tiny()
    z = torch.randn(4, 6)
    h = model.context(z, torch.randn(4, 2))
    tokens = torch.full((4,), 1)
    cond, _ = model.step(tokens, model.init_state(h), h)
    null_h = GuidedDecoder(model, 3.0)._null(h)
    uncond, _ = model.step(tokens, model.init_state(null_h), null_h)
    guided = GuidedDecoder(model, 3.0)
    logits, state = guided.step(tokens, guided.init_state(h), h)
    assert torch.allclose(logits, uncond + 3.0 * (cond - uncond), atol=1e-5)
    assert state.shape[1] == 8  # conditioned rows, then their unconditional twins
    kept = guided.select_state(state, torch.tensor([True, False, False, True]))
    assert torch.equal(kept, state[:, [0, 3, 4, 7]])


def test_condition_dropout_trains_rows_without_condition(cfg_run, tiny_smiles):
    from molgen.vae.training import VAETrainingConfig

    vae = MoleculeVAE.load(cfg_run, device="cpu")
    assert vae.config.null_condition and vae.config.cond_dim == 2
    assert vae.meta["training"]["condition_dropout"] == 0.2
    with pytest.raises(ConfigError, match="condition_dropout"):
        VAETrainingConfig(conditions=["logp"], condition_dropout=1.0)
    with pytest.raises(ConfigError, match="--condition-on"):
        VAETrainingConfig(condition_dropout=0.1)


def test_condition_dropout_blanks_whole_training_rows_only(cfg_run, tiny_smiles):
    from molgen.vae.training import SeqVAETask, VAETrainingConfig, tokenize_smiles

    vae = MoleculeVAE.load(cfg_run, device="cpu")
    data, _ = tokenize_smiles(tiny_smiles[:64], "selfies", 100, vae.vocab)
    rows = np.random.default_rng(0).normal(size=(len(data.smiles), 2)).astype(np.float32)
    cfg = VAETrainingConfig(conditions=["logp", "qed"], condition_dropout=0.5)
    task = SeqVAETask(vae, data, data, cfg, 64, 0, torch.device("cpu"), torch.Generator().manual_seed(0))
    task.conditions = {"train": rows, "val": rows}
    seen = []
    forward = vae.model.forward

    def spy(*args, cond=None, **kwargs):
        seen.append(cond)
        return forward(*args, cond=cond, **kwargs)

    vae.model.forward = spy
    idx = np.arange(len(data.smiles))
    task.step(("train", idx), 0)
    task.step(("val", idx), 0)
    train_cond, val_cond = seen
    absent = torch.isnan(train_cond).all(1)
    assert torch.isnan(train_cond).any(1).equal(absent)  # whole rows, never single properties
    assert 0.3 < absent.float().mean() < 0.7
    assert torch.equal(train_cond[~absent], torch.from_numpy(rows)[~absent])
    assert not torch.isnan(val_cond).any()  # validation always sees its conditions


def test_sample_with_guidance_and_its_errors(cfg_run, tiny_run):
    vae = MoleculeVAE.load(cfg_run, device="cpu")
    plain = vae.sample(12, seed=2, condition="logp=2.5", n_jobs=1)
    assert vae.sample(12, seed=2, condition="logp=2.5", guidance=1.0, n_jobs=1) == plain
    guided = vae.sample(12, seed=2, condition="logp=2.5", guidance=3.0, n_jobs=1)
    assert len(guided) == 12 and guided == vae.sample(12, seed=2, condition="logp=2.5", guidance=3.0, n_jobs=1)
    for bad in (-1.0, float("inf"), "x"):
        with pytest.raises(ConfigError, match="guidance must be"):
            check_guidance(bad)
    with pytest.raises(ConfigError, match="conditional model"):
        MoleculeVAE.load(tiny_run, device="cpu").sample(4, guidance=2.0)


def test_cli_guidance_and_condition_dropout_errors(cfg_run, tiny_run, tmp_path, capsys):
    out = tmp_path / "s.smi"
    base = ["sample", "-n", "6", "-o", str(out), "--device", "cpu"]
    assert main([*base, "--model", str(cfg_run), "--condition", "logp=2", "--guidance", "2"]) == 0
    assert out.exists()
    for model, guidance, message in ((cfg_run, "-1", "finite number >= 0"), (tiny_run, "2", "needs a conditional model")):
        assert main([*base, "--model", str(model), "--guidance", guidance]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    code = main(["train", "--out", str(tmp_path / "r"), "--condition-dropout", "0.2", "--limit", "20"])
    assert code == 2 and "--condition-on" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_warm_start_adds_the_null_flag_to_a_conditional_model(cfg_run, tmp_path, tiny_smiles):
    from molgen.vae.training import _warm_start

    source = MoleculeVAE.load(cfg_run, device="cpu")
    plain_cfg = SeqVAEConfig.from_dict(dict(source.config.to_dict(), null_condition=False))
    plain = MoleculeVAE(SeqVAE(plain_cfg), source.vocab, {"conditions": source.meta["conditions"]}, device="cpu")
    plain.save(tmp_path / "plain.safetensors")
    target = MoleculeVAE(SeqVAE(source.config), source.vocab, {"conditions": source.meta["conditions"]}, device="cpu")
    _warm_start(target, tmp_path / "plain.safetensors")
    ids, _, _ = source.tokenize(tiny_smiles[:3])
    z, c = torch.randn(3, plain_cfg.latent_dim), torch.randn(3, 2)
    want = plain.model.decode_logits(plain.model.context(z, c), ids[:, :-1])
    assert torch.allclose(target.model.decode_logits(target.model.context(z, c), ids[:, :-1]), want, atol=1e-5)
    other = MoleculeVAE(SeqVAE(source.config), source.vocab, {"conditions": ConditionSpec.fit(["sa", "qed"], np.ones((2, 2))).to_dict()})
    with pytest.raises(ConfigError, match="conditioned on logp, qed"):
        _warm_start(other, tmp_path / "plain.safetensors")


# -- property steering with a prefix predictor (molgen.generate.steering) ----------------------------------------------


@pytest.fixture(scope="module")
def predictor(tiny_run, tiny_smiles):
    from molgen.generate.steering_fit import fit_prefix_predictor

    return fit_prefix_predictor(MoleculeVAE.load(tiny_run, device="cpu"), tiny_smiles[:120], ["logp", "qed"], epochs=1, hidden=16)


def test_prefix_predictor_round_trips_and_builds_targets(predictor, tmp_path):
    from molgen.generate.steering import load_prefix_predictor

    path = predictor.save(tmp_path / "p.safetensors")
    again = load_prefix_predictor(path)
    x = torch.tensor([[1, 5, 6, 2]])
    assert torch.equal(again(x)[0], predictor(x)[0]) and again.spec == predictor.spec
    t = predictor.targets("qed=0.7", 3)
    j = predictor.spec.names.index("qed")
    assert t.shape == (3, 2) and torch.isnan(t[:, 1 - j]).all()
    assert t[0, j].item() == pytest.approx((0.7 - predictor.spec.mean[j]) / predictor.spec.std[j], rel=1e-5)
    with pytest.raises(ConfigError, match="not on 'sa'"):
        predictor.targets("sa=3", 1)


def test_prefix_predictor_training_continues_from_init(tiny_run, tiny_smiles):
    from molgen.generate.steering_fit import fit_prefix_predictor

    vae = MoleculeVAE.load(tiny_run, device="cpu")
    first = fit_prefix_predictor(vae, tiny_smiles[:40], ["qed"], epochs=1, hidden=8)
    before = first.head.weight.detach().clone()
    spec = first.spec
    again = fit_prefix_predictor(vae, tiny_smiles[40:80], ["logp"], epochs=1, init=first)
    assert again is first and again.config.names == ["qed"] and again.spec == spec  # the init's names and statistics
    assert not torch.equal(again.head.weight, before)


def test_steering_adds_the_predictors_log_likelihood_and_keeps_rows_aligned(predictor, tiny_run):
    from molgen.generate.steering import PropertySteering

    model = MoleculeVAE.load(tiny_run, device="cpu").model
    z = torch.randn(5, model.config.latent_dim)
    target = torch.tensor([[0.5, NAN]]).expand(5, 2)
    steered = PropertySteering(model, predictor, strength=2.0)
    h = torch.cat([z, target], dim=1)
    tokens = torch.full((5,), 1)
    logits, (inner, pred_h) = steered.step(tokens, steered.init_state(h), h)
    plain, _ = model.step(tokens, model.init_state(z), z)
    mean, log_sd = predictor.candidates(predictor.advance(tokens, None))
    bonus = -0.5 * ((0.5 - mean[..., 0]) / log_sd[..., 0].exp()) ** 2 - log_sd[..., 0]  # only logp is requested
    assert torch.allclose(logits, plain + 2.0 * bonus, atol=1e-4)
    kept_inner, kept_pred = steered.select_state((inner, pred_h), torch.tensor([0, 3]))
    assert torch.equal(kept_pred, pred_h[:, [0, 3]]) and torch.equal(kept_inner, inner[:, [0, 3]])


def test_sampling_with_steering_and_its_errors(predictor, tiny_run, cfg_run, tiny_smiles):
    from molgen.generate.steering_fit import fit_prefix_predictor

    vae = MoleculeVAE.load(tiny_run, device="cpu")  # unconditional: the request goes to the predictor only
    plain = vae.sample(10, seed=1, n_jobs=1)
    assert vae.sample(10, seed=1, n_jobs=1, condition="logp=2", steering=Steering(predictor, 0.0)) == plain
    assert len(vae.sample(10, seed=1, n_jobs=1, condition="logp=2", steering=Steering(predictor, 3.0))) == 10
    cond = MoleculeVAE.load(cfg_run, device="cpu")  # guidance and steering together
    own = fit_prefix_predictor(cond, tiny_smiles[:40], ["logp"], epochs=1, hidden=8)
    assert len(cond.sample(6, seed=1, n_jobs=1, condition="logp=2", guidance=2.0, steering=Steering(own))) == 6
    with pytest.raises(ConfigError, match="needs a property request"):
        vae.sample(4, steering=Steering(predictor))
    with pytest.raises(ConfigError, match="strength"):
        vae.sample(4, condition="logp=2", steering=Steering(predictor, -1.0))
    predictor.vocab_tokens = [*predictor.vocab_tokens[:-1], "[Xx]"]
    try:
        with pytest.raises(ConfigError, match="different vocabulary"):
            vae.sample(4, condition="logp=2", steering=Steering(predictor))
    finally:
        predictor.vocab_tokens = list(vae.vocab.tokens)


def test_cli_fit_steering_and_sample_with_it(tiny_run, tmp_path, capsys):
    path = tmp_path / "steer.safetensors"
    code = main(["fit-steering", "--model", str(tiny_run), "-o", str(path), "--limit", "60", "--epochs", "1", "--properties", "logp"])
    assert code == 0 and path.exists()
    out = tmp_path / "s.smi"
    base = ["sample", "--model", str(tiny_run), "-n", "6", "-o", str(out), "--device", "cpu", "--steer", str(path)]
    assert main([*base, "--condition", "logp=2", "--steer-strength", "2"]) == 0 and out.exists()
    capsys.readouterr()
    for extra, message in (([], "--steer needs a property request"), (["--condition", "logp=2", "--steer-strength", "-1"], "finite number >= 0")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    assert main(["fit-steering", "--model", str(tiny_run), "-o", str(path), "--properties", "nope"]) == 2
    assert "unknown property 'nope'" in capsys.readouterr().err
    more = tmp_path / "more.safetensors"
    args = ["fit-steering", "--model", str(tiny_run), "-o", str(more), "--limit", "20", "--epochs", "1", "--model-samples", "20"]
    assert main([*args, "--init", str(path)]) == 0 and more.exists()


def test_prefix_predictor_layers_and_given_properties(tiny_run, tiny_smiles, tmp_path):
    from molgen.generate.steering import load_prefix_predictor
    from molgen.generate.steering_fit import fit_prefix_predictor
    from molgen.vae.conditioning import property_matrix

    vae = MoleculeVAE.load(tiny_run, device="cpu")
    smiles = tiny_smiles[:40]
    raw = property_matrix(smiles, ["qed"])
    two = fit_prefix_predictor(vae, smiles, ["qed"], epochs=1, hidden=8, layers=2, properties=raw)
    assert two.gru.num_layers == 2 and two.advance(torch.tensor([1, 5]), None).shape == (2, 2, 8)
    assert two.spec.mean[0] == pytest.approx(float(np.nanmean(raw)))  # statistics of the given values
    again = load_prefix_predictor(two.save(tmp_path / "two.safetensors"))
    assert again.config.layers == 2 and torch.equal(again(torch.tensor([[1, 5, 2]]))[0], two(torch.tensor([[1, 5, 2]]))[0])
    # A two-layer predictor steers like a one-layer one: states keep the batch on dimension 1.
    assert len(vae.sample(5, seed=0, n_jobs=1, condition="qed=0.8", steering=Steering(two, 2.0))) == 5
    shifted = fit_prefix_predictor(vae, smiles, ["qed"], epochs=1, hidden=8, properties=raw + 1.0)
    assert shifted.spec.mean[0] == pytest.approx(two.spec.mean[0] + 1.0)
    with pytest.raises(ConfigError, match=r"shape \[40, 1\]"):
        fit_prefix_predictor(vae, smiles, ["qed"], epochs=1, properties=raw[:10])


def test_steered_samples_for_a_dagger_round(predictor, tiny_run, cfg_run, tiny_smiles):
    from molgen.generate.steering import steered_samples
    from molgen.generate.steering_fit import fit_prefix_predictor

    vae = MoleculeVAE.load(tiny_run, device="cpu")
    first = steered_samples(vae, predictor, 7, strength=2.0, seed=3, batch_size=4)
    assert len(first) == 7 and first == steered_samples(vae, predictor, 7, strength=2.0, seed=3, batch_size=4)
    assert first != steered_samples(vae, predictor, 7, strength=2.0, seed=4, batch_size=4)
    assert first != steered_samples(vae, predictor, 7, strength=2.0, seed=3, batch_size=4, temperature=0.2)
    cond = MoleculeVAE.load(cfg_run, device="cpu")  # conditioned on the same random requests
    assert len(steered_samples(cond, fit_prefix_predictor(cond, tiny_smiles[:40], ["qed", "logp"], epochs=1, hidden=8), 3)) == 3
    with pytest.raises(ConfigError, match="cover the model's conditions"):
        steered_samples(cond, fit_prefix_predictor(cond, tiny_smiles[:40], ["qed"], epochs=1, hidden=8), 3)


def test_cli_fit_steering_dagger_round_and_sizes(tiny_run, tmp_path, capsys):
    first = tmp_path / "first.safetensors"
    base = ["fit-steering", "--model", str(tiny_run), "--limit", "30", "--epochs", "1", "--properties", "logp"]
    assert main([*base, "-o", str(first), "--hidden", "8", "--layers", "2"]) == 0
    from molgen.generate.steering import load_prefix_predictor

    assert load_prefix_predictor(first).config.layers == 2
    second = tmp_path / "second.safetensors"
    assert main([*base, "-o", str(second), "--init", str(first), "--steered-samples", "12", "--steer-strength", "2", "--steered-temperature", "0.5"]) == 0
    used = int(re.search(r"of logp on (\d+) molecules", capsys.readouterr().err.splitlines()[-1]).group(1))
    assert 30 < used <= 42  # the 30 data molecules and the steered samples RDKit accepts
    for extra, message in ((["--steered-samples", "5"], "needs --init"), (["--layers", "0"], "must be >= 1")):
        assert main([*base, "-o", str(tmp_path / "x.safetensors"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


class _CountingPredictor(torch.nn.Module):
    """Predicts, after every prefix, how many tokens 5 it holds (sd 1): a predictor whose choice can be worked out."""

    def __init__(self) -> None:
        super().__init__()
        self.config = types.SimpleNamespace(names=["count"])

    def forward(self, tokens):
        count = (tokens == 5).float().cumsum(1).unsqueeze(-1)
        return count, torch.zeros_like(count)


def test_steering_pick_keeps_the_candidate_the_predictor_likes_best(tiny_run):
    from molgen.generate.steering import PropertySteering

    steer = PropertySteering(MoleculeVAE.load(tiny_run, device="cpu").model, _CountingPredictor(), 1.0)
    ids = torch.tensor(
        [
            [5, 2, 0, 0], [5, 5, 2, 0], [5, 5, 5, 2],  # sample 0: one, two, three 5s before EOS
            [5, 5, 5, 5], [5, 2, 5, 5], [5, 6, 5, 2],  # sample 1: four (no EOS), one (5s after EOS ignored), two
        ]
    )  # fmt: skip
    targets = torch.tensor([[2.0]] * 3 + [[1.0]] * 3)
    assert steer.pick(ids, targets, 3).tolist() == [1, 4]
    assert steer.pick(ids, torch.tensor([[3.0]] * 3 + [[4.0]] * 3), 3).tolist() == [2, 3]
    assert steer.pick(ids, torch.full((6, 1), NAN), 3).tolist() == [0, 3]  # nothing requested: all alike, the first
    assert steer.pick(ids, targets, 1).tolist() == list(range(6))


def test_sampling_with_steering_candidates(predictor, tiny_run, tmp_path, capsys):
    vae = MoleculeVAE.load(tiny_run, device="cpu")
    args = dict(seed=2, n_jobs=1, condition="logp=2")
    one = vae.sample(8, steering=Steering(predictor), **args)
    assert vae.sample(8, steering=Steering(predictor, 1.0, 1), **args) == one  # K=1 is plain steering
    four = vae.sample(8, steering=Steering(predictor, 1.0, 4), **args)
    assert len(four) == 8 and four == vae.sample(8, steering=Steering(predictor, 1.0, 4), **args) and four != one
    # A decoding batch holds batch_size rows whatever K: 4 // 3 = one sample of 3 candidates at a time.
    small = vae.sample(7, steering=Steering(predictor, 1.0, 3), batch_size=4, **args)
    assert len(small) == 7 and small == vae.sample(7, steering=Steering(predictor, 1.0, 3), batch_size=4, **args)
    for bad, message in ((0, "whole number >= 1"), (2.5, "whole number >= 1")):
        with pytest.raises(ConfigError, match=message):
            vae.sample(4, steering=Steering(predictor, 1.0, bad), **args)
    with pytest.raises(ConfigError, match="needs --steer"):
        vae.sample(4, steering=Steering(candidates=3))
    path = predictor.save(tmp_path / "p.safetensors")
    out = tmp_path / "k.smi"
    base = ["sample", "--model", str(tiny_run), "-n", "6", "-o", str(out), "--device", "cpu", "--condition", "logp=2"]
    assert main([*base, "--steer", str(path), "--steer-candidates", "3"]) == 0 and len(out.read_text().split()) >= 1
    capsys.readouterr()
    assert main([*base, "--steer-candidates", "3"]) == 2
    err = capsys.readouterr().err
    assert "needs --steer" in err and "Traceback" not in err
