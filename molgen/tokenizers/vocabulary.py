"""Token vocabulary with fixed special tokens.

Ids 0-3 are reserved: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2,
``<unk>`` = 3. Data tokens follow, ordered by decreasing training-set
frequency and then lexicographically, so the same corpus always gives the same
ids. The vocabulary serialises to a small JSON document (no pickles) so that a
checkpoint can carry it.

Example::

    >>> vocab = Vocabulary.build([["C", "C", "O"], ["C", "N"]])
    >>> vocab.tokens[4:]
    ['C', 'N', 'O']
    >>> vocab.encode(["C", "O", "Xx"])
    [1, 4, 6, 3, 2]
    >>> vocab.decode([1, 4, 6, 2, 0, 0])
    ['C', 'O']
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from molgen.errors import CheckpointError, ConfigError, DataError

__all__ = ["Vocabulary", "SPECIAL_TOKENS", "PAD_TOKEN", "BOS_TOKEN", "EOS_TOKEN", "UNK_TOKEN"]

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<bos>"
EOS_TOKEN = "<eos>"
UNK_TOKEN = "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)

_FORMAT = "molgen.vocabulary"
_FORMAT_VERSION = 1


class Vocabulary:
    """Bidirectional token <-> id map.

    ``Vocabulary(data_tokens)`` takes the data tokens only, in id order; the
    four special tokens are always prepended. ``tokens`` is the full list,
    where a token's position is its id.
    """

    PAD = 0
    BOS = 1
    EOS = 2
    UNK = 3

    def __init__(self, data_tokens: Iterable[str]) -> None:
        self._tokens: list[str] = list(SPECIAL_TOKENS)
        self._index: dict[str, int] = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
        for token in data_tokens:
            if not isinstance(token, str) or not token:
                raise ConfigError(f"vocabulary tokens must be non-empty strings, got {token!r}; fix the token list")
            if token in self._index:
                raise ConfigError(f"token {token!r} appears twice in the vocabulary (or is a special token); deduplicate the token list")
            self._index[token] = len(self._tokens)
            self._tokens.append(token)

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1) -> Vocabulary:
        """Vocabulary of every token seen at least ``min_freq`` times in ``token_lists``."""
        if min_freq < 1:
            raise ConfigError(f"min_freq must be >= 1, got {min_freq}; use 1 to keep every token")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        for special in SPECIAL_TOKENS:
            counts.pop(special, None)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls(token for token, count in ranked if count >= min_freq)

    # -- lookup -----------------------------------------------------------------

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, specials first (a copy)."""
        return list(self._tokens)

    @property
    def pad_id(self) -> int:
        return self.PAD

    @property
    def bos_id(self) -> int:
        return self.BOS

    @property
    def eos_id(self) -> int:
        return self.EOS

    @property
    def unk_id(self) -> int:
        return self.UNK

    def token_id(self, token: str) -> int:
        """Id of ``token``, or ``UNK`` when it is not in the vocabulary."""
        return self._index.get(token, self.UNK)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    # -- encoding ---------------------------------------------------------------

    def encode(self, tokens: Sequence[str], add_bos: bool = True, add_eos: bool = True) -> list[int]:
        """Ids of ``tokens``, unknown tokens mapped to ``UNK``."""
        ids = [self._index.get(t, self.UNK) for t in tokens]
        if add_bos:
            ids.insert(0, self.BOS)
        if add_eos:
            ids.append(self.EOS)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``: stops at the first ``EOS``, skips ``PAD`` and ``BOS``.

        ``UNK`` is kept as the literal ``"<unk>"`` so that a sequence the model
        could not spell is not passed off as a valid molecule.
        """
        out: list[str] = []
        n = len(self._tokens)
        for raw in ids:
            i = int(raw)
            if i == self.EOS:
                break
            if i in (self.PAD, self.BOS):
                continue
            if not 0 <= i < n:
                raise ConfigError(f"token id {i} is outside the vocabulary (size {n}); the model and vocabulary do not match")
            out.append(self._tokens[i])
        return out

    def encode_batch(
        self,
        token_lists: Sequence[Sequence[str]],
        max_len: int | None = None,
        add_bos: bool = True,
        add_eos: bool = True,
    ) -> np.ndarray:
        """Encode and right-pad with ``PAD`` into an ``int64`` array ``[N, max_len]``.

        ``max_len`` defaults to the longest encoded sequence; a sequence longer
        than ``max_len`` raises :class:`DataError` instead of being truncated,
        because a truncated sequence silently loses its ``EOS``.
        """
        extra = int(add_bos) + int(add_eos)
        lengths = np.fromiter((len(t) + extra for t in token_lists), dtype=np.int64, count=len(token_lists))
        longest = int(lengths.max()) if len(lengths) else 0
        width = longest if max_len is None else int(max_len)
        if longest > width:
            raise DataError(
                f"a sequence has {longest} ids but max_len is {width}; "
                "filter molecules by length first or raise max_len"
            )
        flat = np.fromiter(
            (i for tokens in token_lists for i in self.encode(tokens, add_bos, add_eos)),
            dtype=np.int64,
            count=int(lengths.sum()),
        )
        out = np.full((len(token_lists), width), self.PAD, dtype=np.int64)
        # Row-major boolean mask of the occupied prefix of each row matches the
        # order of ``flat``, so one masked assignment fills the whole batch.
        out[np.arange(width)[None, :] < lengths[:, None]] = flat
        return out

    # -- serialisation ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (format tag, version and the full token list)."""
        return {"format": _FORMAT, "version": _FORMAT_VERSION, "tokens": list(self._tokens)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """Inverse of :meth:`to_dict`; raises :class:`CheckpointError` on malformed input."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"vocabulary must be a JSON object, got {type(data).__name__}; the checkpoint is corrupted")
        if data.get("format") != _FORMAT:
            raise CheckpointError(f"not a molgen vocabulary (format={data.get('format')!r}); point to a file written by molgen")
        version = data.get("version")
        if not isinstance(version, int) or version > _FORMAT_VERSION:
            raise CheckpointError(
                f"vocabulary format version {version!r} is not supported (this molgen reads <= {_FORMAT_VERSION}); upgrade molgen"
            )
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise CheckpointError("vocabulary 'tokens' must be a list of strings; the checkpoint is corrupted")
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise CheckpointError(
                f"vocabulary must start with {list(SPECIAL_TOKENS)}, got {tokens[:len(SPECIAL_TOKENS)]}; the checkpoint is corrupted"
            )
        try:
            return cls(tokens[len(SPECIAL_TOKENS):])
        except ConfigError as exc:
            raise CheckpointError(f"malformed vocabulary: {exc}") from None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON, atomically."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, ensure_ascii=False, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CheckpointError(f"vocabulary file {path} not found; check the path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"cannot read vocabulary file {path} ({exc}); check the file") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"vocabulary file {path} is not valid JSON ({exc.msg} at line {exc.lineno}); the file is corrupted") from None
        return cls.from_dict(data)
