"""Every image model: build, forward shapes and finite losses, checkpoint round trip, one step lowers its loss."""

from __future__ import annotations

import math

import pytest
import torch

from molgen.errors import CheckpointError, ConfigError
from molgen.models.image import (
    MODEL_NAMES,
    build_model,
    load_image_model,
    save_image_model,
)
from molgen.models.image.layers import label_planes
from molgen.models.image.vae import ConvVAE
from molgen.utils.checkpoint import save_checkpoint

SHAPE = (1, 12, 10)  # deliberately not square and not a multiple of 4
TINY = dict(hidden=4)


def _batch(n: int = 8, shape=SHAPE) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *shape, generator=g), torch.arange(n) % 3


def _model(name: str, shape=SHAPE):
    torch.manual_seed(0)
    return build_model(name, shape, num_classes=3, **TINY)


def _losses(model, name: str, x, y) -> dict[str, torch.Tensor]:
    """Every loss of a model on a fixed batch with fixed noise (same values on repeated calls)."""
    torch.manual_seed(1)  # dropout
    g = torch.Generator().manual_seed(2)
    kind = model.kind
    if kind == "image_vae":
        return {"all": model(x, y if model.conditional else None, generator=g).loss}
    if kind == "image_dae":
        return {"all": model(x, generator=g).loss}
    if kind == "image_gan":
        d = model.discriminator_loss(x, y if model.conditional else None, generator=g).losses
        return {**d, **model.generator_loss(len(x), generator=torch.Generator().manual_seed(3)).losses}
    if kind == "image_sgan":
        d = model.discriminator_loss(x, x[:4], y[:4], generator=g).losses
        return {**d, **model.generator_loss(x, generator=torch.Generator().manual_seed(3)).losses}
    return model.losses(x, generator=g).losses


def _params(model, group: str):
    return list(model.parameters()) if group == "all" else model.param_groups()[group]


@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_forward_shapes_and_finite_losses(name):
    model = _model(name)
    x, y = _batch()
    losses = _losses(model, name, x, y)
    assert losses and all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    if hasattr(model, "sample"):
        labels = y if getattr(model, "conditional", False) else None
        images = model.sample(len(x), labels, generator=torch.Generator().manual_seed(0))
        assert images.shape == x.shape and images.min() >= 0 and images.max() <= 1
    if hasattr(model, "encode"):
        code = model.encode(x) if name == "dae" else model.encode(x, y if getattr(model, "conditional", False) else None)[0]
        assert code.shape[0] == len(x)


@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_one_step_lowers_each_loss_on_a_fixed_batch(name):
    x, y = _batch()
    for group in _losses(_model(name), name, x, y):
        model = _model(name).train()
        before = _losses(model, name, x, y)[group]
        optimizer = torch.optim.Adam(_params(model, group), lr=1e-3)
        optimizer.zero_grad()
        before.backward()
        optimizer.step()
        after = _losses(model, name, x, y)[group]
        assert after.item() < before.item(), f"{name}/{group}: {before.item():.5f} -> {after.item():.5f}"


@pytest.mark.parametrize("name", list(MODEL_NAMES))
def test_checkpoint_round_trip_rebuilds_an_identical_model(tmp_path, name):
    model = _model(name).eval()
    x, y = _batch()
    path = save_image_model(model, tmp_path / "model.safetensors", {"model_name": name})
    loaded, meta = load_image_model(tmp_path)  # a run folder works too
    assert meta["kind"] == model.kind and meta["model_name"] == name
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    if hasattr(model, "sample"):
        labels = y if getattr(model, "conditional", False) else None
        a = model.sample(4, None if labels is None else labels[:4], generator=torch.Generator().manual_seed(5))
        b = loaded.sample(4, None if labels is None else labels[:4], generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b)
    assert path.exists()


def test_rgb_images_of_any_size_work():
    model = build_model("vae", (3, 9, 17), **TINY)
    x = torch.rand(2, 3, 9, 17)
    out = model(x)
    assert out.logits.shape == x.shape and torch.isfinite(out.loss)


def test_conditional_models_need_classes_and_labels():
    with pytest.raises(ConfigError, match="at least 2 classes"):
        build_model("cgan", SHAPE, num_classes=0)
    with pytest.raises(ConfigError, match="unknown image model"):
        build_model("diffusion", SHAPE)
    with pytest.raises(ConfigError, match="VAEConfig: unknown key"):
        build_model("vae", SHAPE, widht=3)
    with pytest.raises(ConfigError, match="pass labels"):
        _model("cvae").encode(_batch()[0])


def test_molecular_checkpoint_is_refused_in_one_line(tmp_path):
    save_checkpoint(tmp_path / "mol.safetensors", {"w": torch.zeros(1)}, {"kind": "seq_vae"})
    with pytest.raises(CheckpointError, match="molecular model") as info:
        load_image_model(tmp_path / "mol.safetensors")
    assert "\n" not in str(info.value)
    save_image_model(_model("dcgan"), tmp_path / "gan.safetensors")
    with pytest.raises(CheckpointError, match="image_gan checkpoint but this needs"):
        load_image_model(tmp_path / "gan.safetensors", expect=("image_vae",))


def test_image_checkpoint_is_refused_by_the_molecular_loader(tmp_path):
    from molgen.vae import MoleculeVAE

    save_image_model(_model("vae"), tmp_path / "img.safetensors")
    with pytest.raises(CheckpointError):
        MoleculeVAE.load(tmp_path / "img.safetensors", device="cpu")


def test_vae_loss_is_elbo_and_iw_bound_is_tighter():
    torch.manual_seed(0)
    model = ConvVAE(build_model("vae", SHAPE, **TINY).config).eval()
    x, _ = _batch(16)
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        neg_elbo = torch.stack([model(x, generator=g).loss for _ in range(200)]).mean().item()
        iw1 = model.iw_nll(x, samples=1, generator=torch.Generator().manual_seed(1)).mean().item()
        iw50 = model.iw_nll(x, samples=50, generator=torch.Generator().manual_seed(1)).mean().item()
    # k=1 is a one-sample ELBO; more importance samples can only tighten the bound (Burda et al.).
    assert math.isclose(iw1, neg_elbo, rel_tol=0.01)
    assert iw50 < neg_elbo
    # An untrained decoder outputs ~0.5 everywhere: about log 2 nats per pixel.
    assert 0.5 * 120 < iw50 < 1.5 * 120


def test_gans_start_with_small_discriminator_scores():
    # With PyTorch's default initialisation (N(0, 1) for the projection embedding) the untrained cGAN
    # discriminator scores these images up to +-2.7, and in training it won at once; DCGAN's N(0, 0.02)
    # keeps every score below 0.03.
    x, y = _batch(32, (1, 28, 28))
    for name in ("dcgan", "cgan", "wgan-gp"):
        torch.manual_seed(0)
        model = build_model(name, (1, 28, 28), num_classes=3).eval()
        with torch.no_grad():
            scores = model.discriminator(x, y if model.conditional else None)
        assert scores.abs().max() < 0.1, name
        weights = model.generator.fc[0].weight
        assert abs(weights.std().item() - 0.02) < 0.002, name


def test_conditional_models_see_the_label_in_the_first_layer():
    # The label enters the cVAE encoder and the cGAN discriminator as constant input planes.
    x, y = _batch()
    cvae, cgan = _model("cvae").eval(), _model("cgan").eval()
    assert cvae.encoder.conv[0].in_channels == SHAPE[0] + 3 and cvae.config.latent_dim == 4
    assert cgan.discriminator.features.conv[0].in_channels == SHAPE[0] + 3
    with torch.no_grad():
        assert not torch.allclose(cvae.encode(x, y)[0], cvae.encode(x, (y + 1) % 3)[0])
        a = cgan.discriminator.features(label_planes(x, y, 3))
        b = cgan.discriminator.features(label_planes(x, (y + 1) % 3, 3))
    assert not torch.allclose(a, b)


def test_packed_discriminator_scores_each_pack_from_all_of_its_images():
    torch.manual_seed(0)
    # Without minibatch std, which would couple every pack through the batch's spread.
    model = build_model("dcgan", SHAPE, pack=2, minibatch_std=False, **TINY).eval()
    assert model.discriminator.features.conv[0].in_channels == 2 * SHAPE[0]
    x, _ = _batch(7)
    with torch.no_grad():
        scores = model.discriminator(x)
        swapped = model.discriminator(torch.cat([x[:1], x[2:3], x[1:2], x[3:]]))  # packs (0,2), (1,3)
    assert scores.shape == (3,)  # 7 images: three packs, the odd one left out
    assert scores[0] != swapped[0] and scores[1] != swapped[1] and scores[2] == swapped[2]
    losses = _losses(model.train(), "dcgan", x, None)
    assert all(torch.isfinite(v) for v in losses.values())
    with pytest.raises(ConfigError, match="pack"):
        build_model("cgan", SHAPE, num_classes=3, pack=2)
    with pytest.raises(ConfigError, match="pack"):
        build_model("wgan-gp", SHAPE, pack=2)
    with pytest.raises(ConfigError, match="smaller than the pack"):
        model.discriminator(x[:1])
