"""The semi-supervised GAN's discriminators and losses (Salimans et al. 2016)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from molgen.errors import ConfigError
from molgen.models.image import build_model, load_image_model, save_image_model
from molgen.models.image.sgan import SGANConfig

SHAPE = (1, 8, 6)
SMALL = dict(hidden=4, latent_dim=4, widths=(12, 8, 6))


def _sgan(**overrides):
    torch.manual_seed(0)
    return build_model("sgan", SHAPE, num_classes=3, **{**SMALL, **overrides})


def _batch(n: int = 6):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *SHAPE, generator=g), torch.arange(n) % 3


def test_mlp_discriminator_is_noisy_only_in_training():
    model = _sgan(discriminator="mlp")
    x, _ = _batch()
    model.train()
    assert not torch.allclose(model.logits(x), model.logits(x))
    model.eval()
    assert torch.equal(model.logits(x), model.logits(x))
    # Without noise, training and evaluation compute the same function.
    quiet = _sgan(discriminator="mlp", input_noise=0.0, hidden_noise=0.0)
    with torch.no_grad():
        assert torch.allclose(quiet.train().logits(x), quiet.eval().logits(x))


def test_mlp_layers_are_weight_normalised_and_features_are_the_last_hidden_layer():
    model = _sgan(discriminator="mlp").eval()
    x, _ = _batch()
    assert model.features(x).shape == (len(x), 6)  # what the generator's feature matching compares
    before = model.logits(x)
    with torch.no_grad():
        for layer in model.features.layers:
            layer.parametrizations.weight.original1.mul_(3.0)  # the direction v: its length must not matter
    assert torch.allclose(model.logits(x), before, atol=1e-6)


def test_unsupervised_loss_is_the_k_plus_one_class_gan_loss():
    # D(x) = 1 - p(fake | x) under a softmax over the K logits and a (K+1)-th logit fixed at 0.
    model = _sgan(discriminator="mlp", input_noise=0.0, hidden_noise=0.0, unsupervised_weight=0.5, label_shift=0).eval()
    x, y = _batch()
    g = torch.Generator().manual_seed(4)
    out = model.discriminator_loss(x, x[:3], y[:3], generator=g)
    with torch.no_grad():
        fake = model.generate(model.noise(len(x), torch.Generator().manual_seed(4)))
        p_fake_real = F.softmax(F.pad(model.logits(x), (0, 1)), 1)[:, -1]
        p_fake_fake = F.softmax(F.pad(model.logits(fake), (0, 1)), 1)[:, -1]
        expected_unsup = -torch.log(1 - p_fake_real).mean() - torch.log(p_fake_fake).mean()
        expected_sup = F.cross_entropy(model.logits(x[:3]), y[:3])
    assert math.isclose(out.logs["unsupervised"], expected_unsup.item(), rel_tol=1e-5)
    assert math.isclose(out.losses["discriminator"].item(), (expected_sup + 0.5 * expected_unsup).item(), rel_tol=1e-5)


def test_config_round_trips_through_json_and_checkpoints(tmp_path):
    model = _sgan(discriminator="mlp").eval()
    config = SGANConfig.from_dict(model.config.to_dict() | {"widths": [12, 8, 6]})  # JSON gives lists
    assert config == model.config
    save_image_model(model, tmp_path / "m.safetensors")
    loaded, _ = load_image_model(tmp_path / "m.safetensors")
    x, _ = _batch()
    assert torch.equal(loaded.logits(x), model.logits(x))


@pytest.mark.parametrize("bad", [dict(discriminator="rnn"), dict(widths=()), dict(widths=(4, 0)), dict(input_noise=-1.0)])
def test_bad_sgan_configs_are_config_errors(bad):
    with pytest.raises(ConfigError):
        _sgan(**bad)


def test_random_shift_moves_each_image_by_at_most_the_limit():
    from molgen.models.image.layers import random_shift

    x = torch.zeros(40, 2, 9, 9)
    x[:, :, 4, 4] = 1.0
    y = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.equal(y.sum((1, 2, 3)), torch.full((40,), 2.0))  # nothing falls off
    where = [(img[0] == 1).nonzero()[0].tolist() for img in y]
    assert all(2 <= r <= 6 and 2 <= c <= 6 for r, c in where)
    assert len({tuple(p) for p in where}) > 5  # each image draws its own shift
    assert all(torch.equal(img[0], img[1]) for img in y)  # channels move together
    assert torch.equal(random_shift(x, 0), x)


def test_label_shift_changes_only_the_supervised_term():
    x, y = _batch()
    losses = []
    for shift in (0, 2):
        model = _sgan(discriminator="mlp", input_noise=0.0, hidden_noise=0.0, label_shift=shift).eval()
        losses.append(model.discriminator_loss(x, x[:3], y[:3], generator=torch.Generator().manual_seed(4)).logs)
    assert losses[0]["supervised"] != losses[1]["supervised"]
    # Unlabelled and generated images are not shifted (the fakes are drawn before the shifts).
    assert losses[0]["unsupervised"] == losses[1]["unsupervised"]
