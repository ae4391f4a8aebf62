"""Transformer (self-attention) sequence VAE with the same interface as the GRU :class:`~molgen.models.seq_vae.SeqVAE`.

Vaswani et al. 2017, "Attention is all you need", in the pre-norm arrangement
of GPT-2 (Radford et al. 2019); as a molecular VAE in the spirit of Dollar et
al. 2021 ("Attention-based generative models for de novo molecular design",
Chem. Sci. 12:8362) and Yan et al. 2021 (Transformer VAE for SMILES).

Encoder: token + learned position embeddings -> bidirectional self-attention
blocks (padding masked) -> mean over the molecule's tokens -> ``(mu, logvar)``.
Decoder: causal self-attention blocks; the context ``[z, c]`` is projected to
the model width and added to every input embedding, the attention analogue of
the GRU decoder seeing ``z`` at every step. Decoding one token at a time keeps
a key/value cache per layer, so each step costs one token's projections plus
one attention row, and :func:`molgen.generate.decode_tokens` drives it exactly
as it drives the GRU (``init_state`` / ``step`` / ``select_state``).

Size fields of :class:`SeqVAEConfig` mean: ``embed_dim`` the width,
``encoder_layers``/``decoder_layers`` the number of blocks,
``encoder_hidden``/``decoder_hidden`` the feed-forward widths, ``n_heads``
the attention heads. :data:`TRANSFORMER_DEFAULTS` is a CPU-sized default
(about the parameter count of the shipped GRU model).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molgen.models.seq_vae import PAD, SeqVAEBase, SeqVAEConfig

__all__ = ["TRANSFORMER_DEFAULTS", "TransformerVAE"]

#: Size defaults applied when ``arch="transformer"`` and a size is not given.
TRANSFORMER_DEFAULTS: dict[str, int] = dict(
    embed_dim=128, n_heads=4, encoder_layers=2, encoder_hidden=512, decoder_layers=3, decoder_hidden=512
)


class _Block(nn.Module):
    """Pre-norm self-attention block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, width: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, w = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(w, dim=-1)
        return tuple(a.view(b, t, self.heads, w // self.heads).transpose(1, 2) for a in (q, k, v))  # type: ignore[return-value]

    def _finish(self, x: torch.Tensor, att: torch.Tensor) -> torch.Tensor:
        b, _, t, _ = att.shape
        att = att.transpose(1, 2).reshape(b, t, -1)
        x = x + F.dropout(self.proj(att), self.dropout, self.training)
        return x + F.dropout(self.mlp(self.ln2(x)), self.dropout, self.training)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """Whole sequences ``[B, T, W]``; ``mask`` ``[B, 1, 1, T]`` is True where keys may be attended to."""
        q, k, v = self._split(x)
        drop = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, is_causal=causal)
        return self._finish(x, att)

    def step(self, x: torch.Tensor, cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One new position ``[B, 1, W]`` attending to the cached keys/values ``[2, B, H, t, d]`` and itself."""
        q, k, v = self._split(x)
        cache = torch.cat([cache, torch.stack([k, v])], dim=3)
        att = F.scaled_dot_product_attention(q, cache[0], cache[1])
        return self._finish(x, att), cache


class TransformerVAE(SeqVAEBase):
    """Self-attention sequence VAE over token ids (PAD=0, BOS=1, EOS=2, UNK=3)."""

    def __init__(self, config: SeqVAEConfig) -> None:
        super().__init__()
        self.config = c = config
        width = c.embed_dim
        self.embedding = nn.Embedding(c.vocab_size, width, padding_idx=PAD)
        # Encoder inputs hold BOS + tokens + EOS (max_length + 1 positions); decoder inputs one fewer.
        self.position = nn.Embedding(c.max_length + 1, width)
        self.encoder = nn.ModuleList(_Block(width, c.n_heads, c.encoder_hidden, c.dropout) for _ in range(c.encoder_layers))
        self.encoder_norm = nn.LayerNorm(width)
        self.to_mu = nn.Linear(width + c.cond_width, c.latent_dim)
        self.to_logvar = nn.Linear(width + c.cond_width, c.latent_dim)
        self.context_to_input = nn.Linear(c.latent_dim + c.cond_width, width)
        self.decoder = nn.ModuleList(_Block(width, c.n_heads, c.decoder_hidden, c.dropout) for _ in range(c.decoder_layers))
        self.decoder_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, c.vocab_size)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # Small normal weights (GPT-2) keep early attention nearly uniform and training stable without warm-up.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def _embed(self, tokens: torch.Tensor, offset: int = 0) -> torch.Tensor:
        positions = torch.arange(offset, offset + tokens.size(1), device=tokens.device)
        return self.embedding(tokens) + self.position(positions)

    # -- encoder ---------------------------------------------------------------
    def encode(
        self, tokens: torch.Tensor, lengths: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(mu, logvar)`` for padded token ids ``[B, T]`` (with BOS/EOS) and their lengths."""
        keep = torch.arange(tokens.size(1), device=tokens.device) < lengths.to(tokens.device).unsqueeze(1)
        x = self._embed(tokens)
        mask = keep[:, None, None, :]
        for block in self.encoder:
            x = block(x, mask)
        x = self.encoder_norm(x)
        pooled = (x * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1)
        h = self.context(pooled, cond)
        return self.to_mu(h), self.to_logvar(h)

    # -- decoder ---------------------------------------------------------------
    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``[B, T, V]`` for decoder inputs ``[B, T]`` and contexts ``z`` ``[B, D]``."""
        x = self._embed(inputs) + self.context_to_input(z).unsqueeze(1)
        for block in self.decoder:
            x = block(x, causal=True)
        return self.output(self.decoder_norm(x))

    def init_state(self, z: torch.Tensor) -> torch.Tensor:
        """An empty key/value cache ``[layers, 2, B, heads, 0, head_dim]``; the position is its length."""
        c = self.config
        return z.new_zeros(c.decoder_layers, 2, z.size(0), c.n_heads, 0, c.embed_dim // c.n_heads)

    def step(self, tokens: torch.Tensor, state: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoding step: previous tokens ``[B]`` -> next-token logits ``[B, V]`` and the grown cache."""
        x = self._embed(tokens.unsqueeze(1), offset=state.size(4)) + self.context_to_input(z).unsqueeze(1)
        caches = []
        for block, cache in zip(self.decoder, state):
            x, cache = block.step(x, cache)
            caches.append(cache)
        return self.output(self.decoder_norm(x)).squeeze(1), torch.stack(caches)

    @staticmethod
    def select_state(state: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The caches of the sequences ``keep`` (a boolean mask or indices over the batch)."""
        return state[:, :, keep]
