"""Batched decoding of latent vectors into molecules.

Works for any model that exposes ``init_state(z)`` and
``step(tokens, state, z) -> (logits, state)`` (the :class:`~molgen.models.seq_vae.SeqVAE`
protocol), and optionally ``select_state(state, keep)`` for states that are not
a tensor with the batch on dimension 1 (the transformer's key/value cache).
``z`` is whatever the decoder consumes: the latent vector, or ``[z, c]`` for a
conditional model. The loop is batched over molecules, runs under
``torch.inference_mode``, and drops each sequence from the batch as soon as it
emits EOS, so cost follows the actual lengths, not the maximum length.

``precision="bf16"`` (or ``"fp16"`` on CUDA) runs the decoder under
``torch.autocast``: on CPUs with native bfloat16 (AVX512-BF16, AMX) the GRU
steps take about 40 % less time; the token choice itself stays in float32.
The default, ``"auto"``, is bf16 on such CPUs and fp32 everywhere else
(set ``MOLGEN_NO_BF16=1`` to keep fp32 there too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from molgen.utils.runtime import PRECISIONS, autocast, autocast_dtype

__all__ = ["DecodeOptions", "decode_tokens", "prepare_context", "select_rows", "slerp", "lerp"]

PAD, BOS, EOS, UNK = 0, 1, 2, 3
_NEVER = torch.tensor([PAD, BOS, UNK])


@dataclass
class DecodeOptions:
    """How to pick each next token: greedy argmax, or sampling with temperature and optional top-k / top-p.

    ``top_p`` (nucleus sampling, Holtzman et al. 2020) keeps the smallest set of
    most likely tokens whose probabilities (after temperature) sum to at least
    ``top_p``; 1 keeps every token.
    """

    strategy: Literal["sample", "greedy"] = "sample"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    max_length: int | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from molgen.errors import ConfigError

        if self.strategy not in ("sample", "greedy"):
            raise ConfigError(f"unknown decoding strategy {self.strategy!r}; use sample or greedy")
        if self.strategy == "sample" and not self.temperature > 0:
            raise ConfigError("temperature must be > 0 (use --greedy for deterministic decoding)")
        if self.top_k < 0:
            raise ConfigError("top_k must be >= 0 (0 disables top-k)")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("top_p must be in (0, 1] (1 disables nucleus sampling)")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; use auto, fp32, bf16 or fp16 (CUDA only)")


def _choose(logits: torch.Tensor, opts: DecodeOptions, generator: torch.Generator | None) -> torch.Tensor:
    # PAD, BOS and UNK are never a correct next token (they are not training
    # targets); ruling them out keeps an under-trained model from wasting samples.
    logits = logits.index_fill(-1, _NEVER.to(logits.device), float("-inf"))
    if opts.strategy == "greedy":
        return logits.argmax(-1)
    logits = logits.float() / opts.temperature
    if opts.top_k and opts.top_k < logits.size(-1):
        kth = torch.topk(logits, opts.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if opts.top_p < 1.0:
        probs = _nucleus(probs, opts.top_p)
    return _draw(probs, generator)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of ``probs`` ``[B, V]`` by inverting the CDF at one uniform per row.

    ``torch.multinomial`` draws an exponential per token (``B x V`` random
    numbers, 8 % of decoding on the CPU); this draws ``B``. The uniforms come
    from ``generator`` on its own device (a CPU generator keeps results identical
    across runs on the same device) and are scaled by each row's total, so a
    token of probability 0 is never chosen: ``right=True`` skips the flat steps
    of the CDF.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.size(0), 1, generator=generator, device=probs.device if generator is None else generator.device)
    idx = torch.searchsorted(cdf, u.to(cdf.device) * cdf[:, -1:], right=True).squeeze(-1)
    return idx.clamp_(max=probs.size(-1) - 1)  # u * total rounding up to total (p ~ 1e-7)


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Renormalised probabilities of the smallest most-likely token set with mass >= ``top_p``."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    # A token stays when the mass of the tokens ranked above it is still below top_p,
    # so the most likely token always stays.
    drop = (sorted_probs.cumsum(-1) - sorted_probs) >= top_p
    kept = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
    return kept / kept.sum(-1, keepdim=True)


@torch.inference_mode()
def decode_tokens(
    model,
    z: torch.Tensor,
    options: DecodeOptions | None = None,
    generator: torch.Generator | None = None,
    prefix: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decode latent vectors ``[B, D]`` into token ids ``[B, L]`` (no BOS; EOS then PAD).

    Sequences that have emitted EOS leave the working batch immediately; the
    loop ends when none is left or ``max_length`` tokens were produced.
    ``prefix`` (token ids ``[B, P]``, no BOS, PAD after each row's prefix) forces
    each row's first tokens: the model writes the rest, conditioned on them
    and on ``z`` (a partial molecule completed by the decoder).
    """
    opts = options or DecodeOptions()
    if prefix is not None and (prefix.ndim != 2 or prefix.size(0) != z.size(0)):
        raise ValueError(f"prefix must be token ids [{z.size(0)}, P], got {list(prefix.shape)}")
    # auto decodes in fp32 on CUDA: the GPU is rarely the bottleneck of sampling.
    with autocast(z.device, autocast_dtype(opts.precision, z.device)):
        return _decode_loop(model, z, opts, generator, None if prefix is None else prefix.to(z.device))


#: Finished sequences leave the working batch in steps of this many rows (powers
#: of two below it), so a run meets a few dozen batch shapes rather than every
#: size from 1 to the batch size: each new shape costs oneDNN a primitive and,
#: in bf16, a reordered weight copy, which made memory grow with -n.
_BUCKET = 64


def _bucket(n_alive: int, current: int) -> int:
    """Rows to keep for ``n_alive`` unfinished sequences in a batch of ``current`` rows."""
    size = 1 << (n_alive - 1).bit_length() if n_alive < _BUCKET else -(-n_alive // _BUCKET) * _BUCKET
    return min(size, current)


def _decode_loop(model, z: torch.Tensor, opts: DecodeOptions, generator: torch.Generator | None, prefix=None) -> torch.Tensor:
    max_len = opts.max_length or model.config.max_length
    batch = z.size(0)
    out = torch.full((batch, max_len), PAD, dtype=torch.long, device=z.device)
    active = torch.arange(batch, device=z.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=z.device)
    state = model.init_state(z)
    tokens = torch.full((batch,), BOS, dtype=torch.long, device=z.device)
    z_active = prepare_context(model, z)
    for t in range(max_len):
        logits, state = model.step(tokens, state, z_active)
        # Rows that already ended ride along until the batch shrinks; they write PAD.
        tokens = _choose(logits, opts, generator).masked_fill_(finished, PAD)
        if prefix is not None and t < prefix.size(1):
            forced = prefix[active, t]
            tokens = torch.where(forced != PAD, forced, tokens)
        out[active, t] = tokens
        finished |= tokens == EOS
        n_alive = int((~finished).sum())
        if n_alive == 0:
            break
        rows = _bucket(n_alive, len(active))
        if rows < len(active):
            keep = torch.argsort(finished.to(torch.int8), stable=True)[:rows]  # unfinished rows first
            active, tokens, z_active, finished = active[keep], tokens[keep], z_active[keep], finished[keep]
            state = select_rows(model, state, keep)
    return out


def prepare_context(model, z: torch.Tensor):
    """What ``model.step`` takes as its context: ``model.decode_context(z)`` where the model can
    precompute it once per run (the GRU: first-layer input gates, cast weights), else ``z`` itself."""
    prepare = getattr(model, "decode_context", None)
    return prepare(z) if prepare is not None else z


def select_rows(model, state, keep: torch.Tensor):
    """The decoding state of the sequences ``keep``: ``model.select_state``, or rows of dimension 1."""
    select = getattr(model, "select_state", None)
    return select(state, keep) if select is not None else state[:, keep]


def lerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` points on the straight line from ``a`` to ``b`` (both ends included)."""
    t = torch.linspace(0, 1, steps, device=a.device).unsqueeze(1)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
    """Spherical interpolation (White 2016, "Sampling generative networks"): keeps
    points at the radius where a Gaussian prior puts its mass; falls back to
    linear interpolation for (anti)parallel vectors."""
    a_n, b_n = a / a.norm(), b / b.norm()
    omega = torch.arccos(torch.clamp((a_n * b_n).sum(), -1.0, 1.0))
    if omega.abs() < 1e-6 or (torch.pi - omega).abs() < 1e-6:
        return lerp(a, b, steps)
    t = torch.linspace(0, 1, steps, device=a.device).unsqueeze(1)
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b
