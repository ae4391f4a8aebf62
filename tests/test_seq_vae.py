"""SeqVAE: shapes, finite loss, a training step that lowers the loss, config validation, decoding."""

from __future__ import annotations

import pytest
import torch

from molgen.errors import ConfigError
from molgen.generate.decoding import DecodeOptions, _draw, decode_tokens, lerp, slerp
from molgen.models.seq_vae import SeqVAE, SeqVAEConfig

V, T = 12, 9


def _batch():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, V, (6, T), generator=g)
    lengths = torch.tensor([9, 8, 7, 9, 5, 6])
    ids[:, 0] = 1
    for i, n in enumerate(lengths):
        ids[i, n - 1] = 2
        ids[i, n:] = 0
    return ids, lengths


def _model(**kw):
    torch.manual_seed(0)
    return SeqVAE(SeqVAEConfig(vocab_size=V, embed_dim=8, encoder_hidden=16, decoder_hidden=24, latent_dim=4, max_length=T, **kw))


def test_forward_shapes_and_finite_loss():
    model = _model(decoder_layers=2)
    ids, lengths = _batch()
    out = model(ids, lengths, beta=0.5)
    assert out.logits.shape == (6, T - 1, V)
    assert out.mu.shape == out.logvar.shape == (6, 4)
    assert out.kl_per_dim.shape == (4,)
    assert torch.isfinite(out.loss) and out.recon > 0 and out.kl >= 0
    assert torch.allclose(out.loss, out.recon + 0.5 * out.kl)


def test_free_bits_floor_changes_the_objective_only_below_the_floor():
    model = _model()
    ids, lengths = _batch()
    model.eval()
    plain = model(ids, lengths, beta=1.0)
    floored = model(ids, lengths, beta=1.0, free_bits=10.0)
    assert torch.allclose(floored.loss, plain.recon + 10.0 * 4)


def test_training_steps_lower_the_loss():
    model = _model()
    ids, lengths = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    gen = torch.Generator().manual_seed(1)
    first = model(ids, lengths, beta=0.1, generator=gen).loss.item()
    for _ in range(30):
        loss = model(ids, lengths, beta=0.1, generator=gen).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(ConfigError, match="unknown"):
        SeqVAEConfig.from_dict({"vocab_size": 5, "hidden": 3})
    with pytest.raises(ConfigError):
        SeqVAEConfig(vocab_size=5, representation="inchi")
    cfg = SeqVAEConfig(vocab_size=5)
    assert SeqVAEConfig.from_dict(cfg.to_dict()) == cfg


class _AlwaysEos(torch.nn.Module):
    """Emits token 5 for the first k steps of row k, then EOS (2)."""

    def __init__(self, stops):
        super().__init__()
        self.stops = torch.tensor(stops)
        self.config = SeqVAEConfig(vocab_size=8, max_length=10)
        self.calls = []

    def init_state(self, z):
        return torch.zeros(1, z.size(0), 1)

    def step(self, tokens, state, z):
        self.calls.append(z.size(0))
        t = state[0, :, 0]
        logits = torch.full((z.size(0), 8), -1e9)
        stop = self.stops[z[:, 0].long()]
        logits[torch.arange(z.size(0)), torch.where(t < stop, 5, 2)] = 0.0
        return logits, state + 1


def test_decoding_drops_finished_sequences_and_stops_early():
    model = _AlwaysEos([0, 3, 1])
    z = torch.tensor([[0.0], [1.0], [2.0]])
    ids = decode_tokens(model, z, DecodeOptions(strategy="greedy"))
    assert ids.tolist()[0][:2] == [2, 0]
    assert ids.tolist()[1][:5] == [5, 5, 5, 2, 0]
    assert ids.tolist()[2][:3] == [5, 2, 0]
    # batch shrinks as rows finish; the loop stops after the longest row (4 steps), not max_length (10)
    assert model.calls == [3, 2, 1, 1]


def test_finished_rows_leave_in_buckets_and_every_row_is_decoded_exactly():
    stops = [(7 * i) % 9 for i in range(1000)]
    model = _AlwaysEos(stops)
    ids = decode_tokens(model, torch.arange(1000.0).unsqueeze(1), DecodeOptions(strategy="greedy"))
    for i, stop in enumerate(stops):
        assert ids[i].tolist() == [5] * stop + [2] + [0] * (9 - stop)
    # Batch sizes stay on a few shapes: the full batch, multiples of 64, powers of two below it.
    allowed = {1000} | {64 * k for k in range(1, 16)} | {1, 2, 4, 8, 16, 32}
    assert set(model.calls) <= allowed
    assert model.calls == sorted(model.calls, reverse=True) and len(model.calls) == 9


def test_a_forced_prefix_starts_its_row_and_the_model_writes_the_rest():
    stops = [(7 * i) % 9 for i in range(300)]  # rows finish at different steps, so the batch shrinks under the prefix
    model = _AlwaysEos(stops)
    prefix = torch.zeros(300, 4, dtype=torch.long)
    prefix[::3, :3] = torch.tensor([6, 7, 4])  # every third row is forced to start 6 7 4; the rest decode freely
    prefix[1::3, :1] = 7
    ids = decode_tokens(model, torch.arange(300.0).unsqueeze(1), DecodeOptions(strategy="greedy"), prefix=prefix)
    free = decode_tokens(_AlwaysEos(stops), torch.arange(300.0).unsqueeze(1), DecodeOptions(strategy="greedy"))
    for i, stop in enumerate(stops):
        forced = {0: [6, 7, 4], 1: [7], 2: []}[i % 3]
        # The forced tokens replace the model's first choices (even an EOS it would have written), then it goes on.
        expected = forced + [5] * max(stop - len(forced), 0) + [2]
        assert ids[i].tolist() == expected + [0] * (10 - len(expected)), i
        if not forced:
            assert torch.equal(ids[i], free[i])
    with pytest.raises(ValueError, match="prefix must be token ids"):
        decode_tokens(model, torch.zeros(3, 1), DecodeOptions(strategy="greedy"), prefix=torch.zeros(2, 4, dtype=torch.long))


def test_sampling_is_reproducible_and_top1_is_greedy():
    model = _model()
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    a = decode_tokens(model, z, DecodeOptions(temperature=1.0), torch.Generator().manual_seed(3))
    b = decode_tokens(model, z, DecodeOptions(temperature=1.0), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # fp32: bf16 logits can tie, and top-k keeps every token tied at the k-th value.
    top1 = decode_tokens(model, z, DecodeOptions(top_k=1, precision="fp32"), torch.Generator().manual_seed(4))
    greedy = decode_tokens(model, z, DecodeOptions(strategy="greedy", precision="fp32"))
    assert torch.equal(top1, greedy)


def test_nucleus_keeps_the_smallest_head_with_enough_mass():
    from molgen.generate.decoding import _nucleus

    probs = torch.tensor([[0.05, 0.5, 0.3, 0.15], [0.97, 0.01, 0.01, 0.01]])
    kept = _nucleus(probs, 0.8)
    # 0.5 + 0.3 reaches 0.8: the two most likely tokens stay, renormalised.
    torch.testing.assert_close(kept[0], torch.tensor([0.0, 0.625, 0.375, 0.0]))
    torch.testing.assert_close(kept[1], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(_nucleus(probs, 1.0), probs)
    torch.testing.assert_close(_nucleus(probs, 0.81)[0], torch.tensor([0.0, 0.5, 0.3, 0.15]) / 0.95)


def test_tiny_top_p_is_greedy_and_sampled_tokens_stay_in_the_nucleus():
    model = _model()
    z = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    greedy = decode_tokens(model, z, DecodeOptions(strategy="greedy", precision="fp32"))  # fp32: no tied logits
    assert torch.equal(decode_tokens(model, z, DecodeOptions(top_p=1e-6, precision="fp32"), torch.Generator().manual_seed(4)), greedy)
    a = decode_tokens(model, z, DecodeOptions(top_p=0.5), torch.Generator().manual_seed(5))
    assert torch.equal(a, decode_tokens(model, z, DecodeOptions(top_p=0.5), torch.Generator().manual_seed(5)))


def test_token_draw_follows_the_probabilities_and_never_picks_an_impossible_token():
    probs = torch.tensor([0.0, 0.2, 0.0, 0.5, 0.3, 0.0])
    idx = _draw(probs.repeat(200_000, 1), torch.Generator().manual_seed(0))
    freq = torch.bincount(idx, minlength=6).double() / len(idx)
    assert freq[[0, 2, 5]].sum() == 0
    # binomial standard error at p = 0.5 and 200,000 draws is 0.0011
    torch.testing.assert_close(freq, probs.double(), atol=0.005, rtol=0)
    # Rows need not sum to one (u is scaled by each row's total), and each row draws its own uniform.
    rows = torch.tensor([[0.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1e-3], [5.0, 5.0, 0.0, 0.0]])
    out = torch.stack([_draw(rows, torch.Generator().manual_seed(s)) for s in range(200)])
    assert (out[:, 0] == 1).all() and (out[:, 1] == 3).all()
    assert set(out[:, 2].tolist()) == {0, 1}
    # Same generator seed, same tokens.
    assert torch.equal(_draw(rows, torch.Generator().manual_seed(7)), _draw(rows, torch.Generator().manual_seed(7)))


def test_bf16_gru_cell_takes_tanh_as_exactly_as_tanh_rounded_to_bf16():
    from molgen.models.seq_vae import _double_n, _gru_cell

    g = torch.Generator().manual_seed(0)
    size = 256
    gi, gh = (torch.randn(512, 3 * size, generator=g).bfloat16() for _ in range(2))
    h = torch.randn(512, size, generator=g).clamp(-1, 1).bfloat16()
    r, u = torch.sigmoid(gi[:, : 2 * size] + gh[:, : 2 * size]).chunk(2, dim=-1)
    n = torch.tanh(torch.addcmul(gi[:, 2 * size :], r, gh[:, 2 * size :]).float()).bfloat16()
    exact = torch.lerp(n, h, u)
    fast = _gru_cell(_double_n(gi, dim=1), _double_n(gh, dim=1), h)
    assert fast.dtype == torch.bfloat16
    # 2 * sigmoid(2x) - 1 taken in bf16 would differ on about a third of the entries.
    assert (fast != exact).float().mean() < 1e-3


@pytest.mark.parametrize("layers", [1, 3])
def test_precomputed_step_context_matches_the_gru_step(layers):
    model = _model(decoder_layers=layers)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    tokens = torch.randint(4, model.config.vocab_size, (8,), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        state = model.init_state(z)
        plain, plain_state = model.step(tokens, state, z)
        ctx = model.decode_context(z)
        fast, fast_state = model.step(tokens, state, ctx)
        keep = torch.tensor([5, 1])
        sub, _ = model.step(tokens[keep], state[:, keep], ctx[keep])
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast_state, plain_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(sub, plain[keep], atol=1e-5, rtol=1e-5)


def test_decode_options_validation():
    with pytest.raises(ConfigError):
        DecodeOptions(temperature=0)
    with pytest.raises(ConfigError):
        DecodeOptions(strategy="beam")
    with pytest.raises(ConfigError, match="precision"):
        DecodeOptions(precision="int4")
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match="top_p"):
            DecodeOptions(top_p=bad)
    with pytest.raises(ConfigError, match="CUDA"):
        decode_tokens(_model(), torch.zeros(2, 4), DecodeOptions(precision="fp16"))


def _record_logit_dtypes(model) -> list:
    """Wrap ``model.step`` so that the dtype of every step's logits lands in the returned list."""
    seen = []
    step = model.step

    def recording_step(*args):
        logits, state = step(*args)
        seen.append(logits.dtype)
        return logits, state

    model.step = recording_step
    return seen


def test_bf16_decoding_runs_the_decoder_in_bf16_and_mostly_agrees_with_fp32():
    model = _model()
    seen = _record_logit_dtypes(model)
    z = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    fp32 = decode_tokens(model, z, DecodeOptions(strategy="greedy", precision="fp32"))
    assert set(seen) == {torch.float32}
    seen.clear()
    bf16 = decode_tokens(model, z, DecodeOptions(strategy="greedy", precision="bf16"))
    assert set(seen) == {torch.bfloat16}
    # Rounding may flip a near-tie argmax now and then, not the bulk of the sequences.
    same = (fp32 == bf16).all(1).float().mean().item()
    assert 0.8 <= same
    again = decode_tokens(model, z, DecodeOptions(strategy="greedy", precision="bf16"))
    assert torch.equal(bf16, again)


def test_auto_precision_decodes_in_bf16_only_on_native_hardware(monkeypatch):
    import molgen.utils.runtime as runtime

    model = _model()
    seen = _record_logit_dtypes(model)
    z = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(runtime, "native_bf16", lambda device, native=native: native)
        seen.clear()
        decode_tokens(model, z, DecodeOptions(strategy="greedy"))
        assert set(seen) == {dtype}


def test_native_bf16_can_be_switched_off(monkeypatch):
    from molgen.utils.runtime import native_bf16

    monkeypatch.setenv("MOLGEN_NO_BF16", "1")
    assert native_bf16("cpu") is False
    assert native_bf16("meta") is False


def test_interpolation_end_points():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    for path in (lerp(a, b, 5), slerp(a, b, 5)):
        assert path.shape == (5, 2)
        assert torch.allclose(path[0], a, atol=1e-6) and torch.allclose(path[-1], b, atol=1e-6)
    # slerp keeps the norm between the end points' norms on the way
    norms = slerp(a, b, 7).norm(dim=1)
    assert norms.min() >= 1.0 - 1e-5 and norms.max() <= 2.0 + 1e-5


def test_unk_sequences_decode_to_invalid_and_unfinished_ones_are_cut():
    from molgen.tokenizers import Vocabulary
    from molgen.vae import MoleculeVAE

    vocab = Vocabulary(["C", "O", "N"])
    vae = MoleculeVAE(SeqVAE(SeqVAEConfig(vocab_size=len(vocab), representation="smiles")), vocab, device="cpu")
    ids = torch.tensor([[4, 5, 2, 0], [4, 3, 4, 2], [4, 4, 4, 4], [2, 0, 0, 0]])
    assert vae.ids_to_strings(ids) == ["CO", "", "CCCC", ""]
    assert vae.decode(torch.zeros(2, vae.config.latent_dim), seed=0) is not None


@pytest.mark.parametrize("layers", [1, 2])
def test_padded_encoder_route_equals_packed_sequences(layers):
    from torch.nn.utils.rnn import pack_padded_sequence

    from molgen.models.seq_vae import bidirectional_final_states

    torch.manual_seed(0)
    gru = torch.nn.GRU(8, 16, num_layers=layers, batch_first=True, bidirectional=True).eval()
    lengths = torch.tensor([9, 3, 12, 12, 5, 1])
    x = torch.randn(6, 12, 8, requires_grad=True)
    x_pad = x * (torch.arange(12)[None, :, None] < lengths[:, None, None])  # what lies past the end must not matter
    padded = bidirectional_final_states(gru, x_pad + 100 * (x_pad == 0), lengths)
    _, h = gru(pack_padded_sequence(x_pad, lengths, batch_first=True, enforce_sorted=False))
    packed = h.view(layers, 2, 6, 16)[-1]
    torch.testing.assert_close(padded, packed, atol=1e-6, rtol=1e-5)
    weights = [gru.weight_ih_l0, gru.weight_hh_l0_reverse, getattr(gru, f"bias_hh_l{layers - 1}_reverse")]
    g_padded = torch.autograd.grad((padded * torch.linspace(-1, 1, 16)).sum(), [x, *weights], retain_graph=True)
    g_packed = torch.autograd.grad((packed * torch.linspace(-1, 1, 16)).sum(), [x, *weights])
    for a, b in zip(g_padded, g_packed):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    if layers == 2:  # inter-layer dropout acts in training mode, as nn.GRU's does
        gru.dropout = 0.5
        gru.train()
        assert not torch.allclose(bidirectional_final_states(gru, x, lengths), padded)
