"""Training molecules as a padded token-id array: tokenised once (in a process pool), cached on disk when large."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from molgen import chem
from molgen.datasets.token_cache import (
    CachedTokens,
    default_token_cache,
    load_tokens,
    save_tokens,
    token_cache_key,
)
from molgen.errors import DataError
from molgen.tokenizers import Vocabulary, get_tokenizer
from molgen.train.vocab_growth import extend_vocabulary

__all__ = ["TokenizedData", "tokenize_smiles"]


@dataclass
class TokenizedData:
    ids: np.ndarray  # [N, T] int64, BOS ... EOS then PAD
    lengths: np.ndarray  # [N] tokens including BOS and EOS
    smiles: list[str]
    skipped: dict[str, int]


def _tokenize_one(smiles: str, representation: str) -> list[str] | None:
    try:
        return get_tokenizer(representation).tokenize(smiles)
    except Exception:  # any molecule the tokenizer cannot represent is skipped and counted
        return None


def _untokenizable(smiles: str, reason: str) -> None:
    """A molecule whose worker process died or timed out is skipped like an untokenizable one."""
    return


def tokenize_smiles(
    smiles: list[str],
    representation: str,
    max_length: int,
    vocab: Vocabulary | None = None,
    n_jobs: int | None = None,
    cache_dir: str | Path | None = None,
    cache_min: int = 50_000,
    extend: bool = False,
) -> tuple[TokenizedData, Vocabulary]:
    """Tokenise (in a process pool for large inputs), build or apply a vocabulary, pad to an id array.

    With ``extend``, tokens missing from ``vocab`` are appended to it
    (:func:`~molgen.train.vocab_growth.extend_vocabulary`) instead of being
    read as ``<unk>``; the returned vocabulary is then the grown one.

    Inputs of at least ``cache_min`` molecules are cached on disk
    (:mod:`molgen.datasets.token_cache`, under ``cache_dir`` or
    ``$MOLGEN_CACHE/tokens``); a later call with the same molecules, settings
    and vocabulary memory-maps the arrays instead of tokenising again.
    """
    use_cache = len(smiles) >= cache_min
    if use_cache:
        folder = Path(cache_dir) if cache_dir is not None else default_token_cache()
        vocab_key = (dict(vocab.to_dict(), extend=True) if extend else vocab.to_dict()) if vocab else None
        key = token_cache_key(smiles, representation, max_length, vocab_key)
        hit = load_tokens(key, folder)
        if hit is not None:
            vocab = Vocabulary.from_dict(hit.vocab) if vocab is None or extend else vocab
            kept_smiles = [smiles[i] for i in hit.kept.tolist()]
            return TokenizedData(hit.ids, hit.lengths.astype(np.int64), kept_smiles, dict(hit.skipped)), vocab
    token_lists = chem.pmap(partial(_tokenize_one, representation=representation), smiles, n_jobs=n_jobs, on_failure=_untokenizable)
    skipped = {"untokenizable": 0, "too_long": 0}
    kept_tokens, kept = [], []
    for i, toks in enumerate(token_lists):
        if toks is None:
            skipped["untokenizable"] += 1
        elif len(toks) > max_length:
            skipped["too_long"] += 1
        else:
            kept_tokens.append(toks)
            kept.append(i)
    if not kept_tokens:
        raise DataError(f"no molecule could be tokenised within max_length={max_length}; check the input or raise --max-length")
    if vocab is None:
        vocab = Vocabulary.build(kept_tokens)
    elif extend:
        vocab = extend_vocabulary(vocab, kept_tokens)[0]
    lengths = np.array([len(t) + 2 for t in kept_tokens], dtype=np.int64)
    ids = vocab.encode_batch(kept_tokens)
    if use_cache:
        save_tokens(key, folder, CachedTokens(ids, lengths, np.array(kept), vocab.to_dict(), skipped))
    return TokenizedData(ids, lengths, [smiles[i] for i in kept], skipped), vocab


