"""Classifier-free guidance for conditional sequence VAEs.

Ho & Salimans 2022, "Classifier-free diffusion guidance"; for autoregressive
language models Sanchez et al. 2023, "Stay on topic with classifier-free
guidance". A conditional model trained with condition dropout
(``molgen train --condition-on ... --condition-dropout 0.15``) has learned
both ``p(x | z, c)`` and ``p(x | z)`` (the "no condition" input). At every
decoding step the next-token logits of the two are combined as

    l = l_uncond + w * (l_cond - l_uncond)

so ``w = 1`` is plain conditional decoding, ``w = 0`` ignores the condition
and ``w > 1`` pushes each token further in the direction the condition
favours, which matters when the decoder leans on ``z`` more than on ``c``.

:class:`GuidedDecoder` wraps the model and follows the decoding protocol of
:mod:`molgen.generate.decoding` (``init_state`` / ``step`` / ``select_state``) on a
doubled batch (conditioned rows, then the same rows without condition), so
:func:`~molgen.generate.decode_tokens` drives it unchanged; a guided decode
costs about twice a plain one.

Example::

    >>> from molgen.vae import MoleculeVAE
    >>> vae = MoleculeVAE.load("runs/cond")                      # doctest: +SKIP
    >>> vae.sample(100, condition="logp=2.5", guidance=2.0)     # doctest: +SKIP
"""

from __future__ import annotations

import math

import torch

from molgen.errors import ConfigError
from molgen.generate.decoding import prepare_context, select_rows

__all__ = ["GuidedDecoder", "check_guidance", "guided_decoder"]


def check_guidance(guidance: float, model=None) -> float:
    """Validate a guidance weight (finite, >= 0) and, for ``w != 1``, that ``model`` can be guided."""
    try:
        w = float(guidance)
    except (TypeError, ValueError):
        raise ConfigError(f"guidance must be a number, not {guidance!r}") from None
    if not math.isfinite(w) or w < 0:
        raise ConfigError(f"guidance must be a finite number >= 0 (1: plain conditional decoding), not {guidance}")
    if w != 1.0 and model is not None:
        config = model.config
        if config.cond_dim == 0:
            raise ConfigError("guidance needs a conditional model (train with --condition-on ... --condition-dropout P)")
        if not config.null_condition:
            raise ConfigError(
                "this conditional model was trained without condition dropout, so it has no unconditional mode to guide "
                "against; retrain (or fine-tune with --init-from) with --condition-dropout 0.15"
            )
    return w


def guided_decoder(model, guidance: float = 1.0):
    """``model`` itself for ``guidance == 1`` (plain conditional decoding), else its guided view."""
    w = check_guidance(guidance, model)
    return model if w == 1.0 else GuidedDecoder(model, w)


class GuidedDecoder:
    """A conditional model seen through classifier-free guidance with weight ``guidance``.

    Contexts passed to it are the conditioned ones, ``[z, c, 0]``; the
    unconditional twin ``[z, 0, 1]`` of each row is built here.
    """

    def __init__(self, model, guidance: float) -> None:
        self.model = model
        self.guidance = check_guidance(guidance, model)
        self.config = model.config
        self._rows = 0  # rows of one half of the current batch, set by init_state

    def _null(self, h: torch.Tensor) -> torch.Tensor:
        c = self.config
        null = h.clone()
        null[:, c.latent_dim : c.latent_dim + c.cond_dim] = 0
        null[:, -1] = 1
        return null

    def init_state(self, h: torch.Tensor):
        self._rows = h.size(0)  # tracked here because states keep the batch on different dimensions
        return self.model.init_state(torch.cat([h, self._null(h)]))

    def decode_context(self, h: torch.Tensor) -> _Paired:
        """The doubled contexts, prepared once per run by the model if it can (its fast step path)."""
        return _Paired(prepare_context(self.model, torch.cat([h, self._null(h)])), h.size(0))

    def step(self, tokens: torch.Tensor, state, h) -> tuple[torch.Tensor, object]:
        both = h.inner if isinstance(h, _Paired) else torch.cat([h, self._null(h)])
        logits, state = self.model.step(torch.cat([tokens, tokens]), state, both)
        cond, uncond = logits.float().chunk(2)
        return uncond + self.guidance * (cond - uncond), state

    def select_state(self, state, keep: torch.Tensor):
        both = _both_halves(keep, self._rows)
        self._rows = len(both) // 2
        return select_rows(self.model, state, both)


def _both_halves(keep: torch.Tensor, rows: int) -> torch.Tensor:
    """Indices of the rows ``keep`` (mask or indices over one half) in both halves of a doubled batch."""
    idx = keep.nonzero().squeeze(1) if keep.dtype == torch.bool else keep
    return torch.cat([idx, idx + rows])


class _Paired:
    """Contexts of conditioned rows followed by their unconditioned twins; indexing keeps the halves aligned."""

    __slots__ = ("inner", "rows")

    def __init__(self, inner, rows: int) -> None:
        self.inner, self.rows = inner, rows

    def __getitem__(self, keep: torch.Tensor) -> _Paired:
        both = _both_halves(keep, self.rows)
        return _Paired(self.inner[both], len(both) // 2)

    def __len__(self) -> int:
        return self.rows
