"""Growing a trained model's vocabulary for fine-tuning on molecules it never saw.

A user's actives often hold tokens the pretrained model never met (a
stereocentre ``[C@@H1]``, an E/Z bond ``[/C]``, a charged or isotopic atom).
Mapping them to ``<unk>`` would train the model on garbage, and skipping the
molecules would drop exactly the chemistry the user cares about. Instead the
vocabulary is extended: every old token keeps its id (new tokens are appended,
most frequent first), and only the layers indexed by token id grow:

* ``embedding.weight`` rows of a new token start at the mean of the old data
  tokens' rows plus a little noise, so the encoder reads a new token as "some
  ordinary atom" rather than as an outlier, and new tokens stay distinguishable;
* ``output.weight`` rows start the same way and ``output.bias`` at the lowest
  old bias, so before fine-tuning the decoder almost never emits a new token
  (the pretrained model's samples are unchanged) and the gradient of the
  fine-tuning loss raises it where the data need it.

Every other weight is copied unchanged, so old rows are kept exactly. This is
the same recipe as growing a language model's vocabulary with added tokens
(mean initialisation, Hewitt 2021, "Initializing new word embeddings for
pretrained language models").

Example::

    >>> vocab, added = extend_vocabulary(old_vocab, token_lists)
    >>> state = grow_state_dict(old_model.state_dict(), new_model.state_dict(), len(old_vocab))
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import torch

from molgen.errors import ConfigError
from molgen.tokenizers import SPECIAL_TOKENS, Vocabulary

__all__ = ["NOISE_SCALE", "TOKEN_ROW_PARAMETERS", "extend_vocabulary", "grow_state_dict"]

# Parameters with one row per token id (the same names in the GRU and the transformer VAE).
TOKEN_ROW_PARAMETERS: tuple[str, ...] = ("embedding.weight", "output.weight", "output.bias")
# Noise on new rows, as a fraction of the old rows' per-column standard deviation.
NOISE_SCALE = 0.1


def extend_vocabulary(vocab: Vocabulary, token_lists: Iterable[Sequence[str]]) -> tuple[Vocabulary, list[str]]:
    """``vocab`` with the tokens of ``token_lists`` it lacks appended (most frequent first), and those tokens.

    Old tokens keep their ids, so a model trained with ``vocab`` reads and
    writes them exactly as before. ``vocab`` itself is returned when nothing is new.
    """
    counts: Counter[str] = Counter()
    for tokens in token_lists:
        counts.update(t for t in tokens if t not in vocab)
    for special in SPECIAL_TOKENS:
        counts.pop(special, None)
    added = [t for t, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]
    if not added:
        return vocab, []
    old = vocab.tokens[len(SPECIAL_TOKENS):]
    return Vocabulary(old + added), added


def _new_rows(old: torch.Tensor, n_new: int, generator: torch.Generator, low_bias: bool) -> torch.Tensor:
    """``n_new`` rows for a token-indexed parameter from its old data-token rows."""
    data_rows = old[len(SPECIAL_TOKENS):] if old.shape[0] > len(SPECIAL_TOKENS) else old
    if low_bias:  # a bias vector: new tokens start as unlikely as the rarest old token
        return data_rows.min().expand(n_new).clone()
    mean = data_rows.mean(dim=0, keepdim=True)
    spread = data_rows.std(dim=0, keepdim=True).nan_to_num(0.0) if data_rows.shape[0] > 1 else torch.zeros_like(mean)
    noise = torch.randn((n_new, *old.shape[1:]), generator=generator, dtype=old.dtype)
    return mean + NOISE_SCALE * spread * noise


def grow_state_dict(
    source: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    old_vocab_size: int,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """``source``'s weights reshaped to ``target``'s larger vocabulary (new rows initialised, old rows exact).

    Only :data:`TOKEN_ROW_PARAMETERS` may differ in their first dimension;
    everything else must already have ``target``'s shape (other shape changes
    are the caller's business, e.g. added condition columns).
    """
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, weight in source.items():
        want = target[name].shape
        if name in TOKEN_ROW_PARAMETERS and want[0] != weight.shape[0]:
            if weight.shape[0] != old_vocab_size or want[0] < old_vocab_size or tuple(want[1:]) != tuple(weight.shape[1:]):
                raise ConfigError(
                    f"cannot grow {name} from {tuple(weight.shape)} to {tuple(want)}; the checkpoint does not match its vocabulary"
                )
            extra = _new_rows(weight.detach().float(), want[0] - old_vocab_size, generator, low_bias=weight.dim() == 1)
            out[name] = torch.cat([weight.detach(), extra.to(weight.dtype)], dim=0)
        else:
            out[name] = weight.detach().clone()
    return out
