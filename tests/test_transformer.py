"""Transformer VAE: the key/value-cached step agrees with teacher forcing, batched decoding with early
exit matches one-by-one decoding, padding does not leak, training lowers the loss, checkpoints round-trip."""

from __future__ import annotations

import pytest
import torch

from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions, decode_tokens
from molgen.models.build import build_seq_vae
from molgen.models.seq_vae import SeqVAEConfig
from molgen.models.transformer_vae import TRANSFORMER_DEFAULTS, TransformerVAE
from molgen.vae.training import model_options

V, T = 12, 9


def _model(**kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, arch="transformer", embed_dim=16, n_heads=2, encoder_hidden=32, decoder_hidden=32,
               encoder_layers=1, decoder_layers=2, latent_dim=4, max_length=T)
    cfg.update(kw)
    return build_seq_vae(SeqVAEConfig(**cfg))


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, V, (5, T), generator=g)
    lengths = torch.tensor([9, 7, 5, 9, 4])
    ids[:, 0] = 1
    for i, n in enumerate(lengths):
        ids[i, n - 1] = 2
        ids[i, n:] = 0
    return ids, lengths


def test_cached_steps_equal_teacher_forced_logits():
    model = _model(cond_dim=2).eval()
    h = torch.randn(3, 6)
    inputs = torch.randint(1, V, (3, T - 1))
    full = model.decode_logits(h, inputs)
    state = model.init_state(h)
    steps = []
    for t in range(T - 1):
        logits, state = model.step(inputs[:, t], state, h)
        steps.append(logits)
    assert state.shape == (2, 2, 3, 2, T - 1, 8)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)


def test_batched_decoding_with_early_exit_matches_one_at_a_time():
    model = _model().eval()
    # Larger random weights and a bias towards EOS make sequences finish at different steps
    # (some never), so finished ones leave the batch and select_state is exercised.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        model.output.bias[2] += 2.0
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))
    opts = DecodeOptions(strategy="greedy")
    batched = decode_tokens(model, z, opts)
    single = torch.cat([decode_tokens(model, z[i : i + 1], opts) for i in range(8)])
    ends = batched == 2
    assert len(set(torch.where(ends.any(1), ends.float().argmax(1), -1).tolist())) >= 3
    assert torch.equal(batched, single)


def test_encoder_ignores_padding():
    model = _model().eval()
    ids, lengths = _batch()
    mu, logvar = model.encode(ids, lengths)
    wider = torch.cat([ids, torch.zeros(5, 1, dtype=torch.long)], 1)  # up to the longest input the model takes
    mu2, logvar2 = model.encode(wider, lengths)
    assert torch.allclose(mu, mu2, atol=1e-6) and torch.allclose(logvar, logvar2, atol=1e-6)


def test_forward_and_training_steps_lower_the_loss():
    model = _model()
    ids, lengths = _batch()
    out = model(ids, lengths, beta=0.5)
    assert out.logits.shape == (5, T - 1, V) and out.mu.shape == (5, 4) and torch.isfinite(out.loss)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    model.train()
    first = model(ids, lengths, beta=0.1, generator=gen).loss.item()
    for _ in range(40):
        loss = model(ids, lengths, beta=0.1, generator=gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_config_validation_and_arch_defaults():
    with pytest.raises(ConfigError, match="multiple of n_heads"):
        SeqVAEConfig(vocab_size=V, arch="transformer", embed_dim=10, n_heads=4)
    with pytest.raises(ConfigError, match="unknown architecture 'lstm'"):
        SeqVAEConfig(vocab_size=V, arch="lstm")  # type: ignore[arg-type]
    assert isinstance(_model(), TransformerVAE)
    opts = model_options("transformer", embed_dim=64, decoder_layers=None)
    assert opts["arch"] == "transformer" and opts["embed_dim"] == 64
    assert opts["decoder_layers"] == TRANSFORMER_DEFAULTS["decoder_layers"]
    assert model_options("gru", latent_dim=8) == {"arch": "gru", "latent_dim": 8}
    with pytest.raises(ConfigError, match="n-heads"):
        model_options("gru", n_heads=2)


def test_trained_transformer_checkpoint_round_trips(tmp_path, tiny_smiles):
    from molgen.vae import MoleculeVAE
    from molgen.vae.training import VAETrainingConfig, train_vae

    config = VAETrainingConfig(
        model=model_options("transformer", embed_dim=16, n_heads=2, encoder_layers=1, decoder_layers=1,
                            encoder_hidden=32, decoder_hidden=32, latent_dim=8),
        train=dict(epochs=1, batch_size=32, lr=3e-3, seed=0),
        kl=dict(kind="linear", beta=0.5, warmup_steps=10),
        val_fraction=0.1,
    )
    trained, _ = train_vae(tiny_smiles[:150], tmp_path, config, device="cpu", show_progress=False)
    loaded = MoleculeVAE.load(tmp_path, device="cpu")
    assert isinstance(loaded.model, TransformerVAE) and loaded.config == trained.config
    assert loaded.sample(20, seed=2) == trained.sample(20, seed=2)
    z, kept = loaded.encode(tiny_smiles[:5])
    assert z.shape == (len(kept), 8)
