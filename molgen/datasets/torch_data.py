"""PyTorch plumbing for token-id sequences: dataset, length-bucketed batches, padding.

Batching sequences of similar length wastes little compute on padding. The
:class:`BucketBatchSampler` follows the usual "sort within a random pool"
recipe (as in fairseq/AllenNLP bucket iterators): shuffle all indices, cut
them into pools of many batches, sort each pool by length, cut it into
batches and shuffle the batch order. Batches are then nearly
length-homogeneous while every epoch still sees a different grouping.

This is the only module of :mod:`molgen.datasets` that imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, Sampler

from molgen.errors import ConfigError

__all__ = ["SequenceDataset", "BucketBatchSampler", "collate_padded"]

_PAD_ID = 0  # Vocabulary.PAD; kept literal so this module does not import the tokenizers


class SequenceDataset(Dataset):
    """Variable-length id sequences, stored as one flat ``int64`` array.

    Build it from a list of 1-D id arrays, or from a padded ``[N, T]`` array
    plus ``lengths`` (when ``lengths`` is omitted the non-PAD ids of each row
    are counted, which is right for right-padded rows). Items are 1-D
    ``LongTensor`` views without padding.
    """

    def __init__(self, ids: Sequence[np.ndarray] | np.ndarray, lengths: Sequence[int] | np.ndarray | None = None) -> None:
        if isinstance(ids, np.ndarray) and ids.ndim == 2:
            padded = ids.astype(np.int64, copy=False)
            lens = np.asarray(lengths if lengths is not None else (padded != _PAD_ID).sum(axis=1), dtype=np.int64)
            if lens.shape != (len(padded),) or (lens < 0).any() or (lens > padded.shape[1]).any():
                raise ConfigError(f"lengths must be {len(padded)} values in [0, {padded.shape[1]}]; pass one length per row")
            flat = padded[np.arange(padded.shape[1])[None, :] < lens[:, None]]
        else:
            if lengths is not None:
                raise ConfigError("lengths is only used with a padded 2-D array; drop it for a list of sequences")
            arrays = [np.asarray(a, dtype=np.int64).reshape(-1) for a in ids]
            lens = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
            flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        self._flat = np.ascontiguousarray(flat)
        self._offsets = np.concatenate([[0], np.cumsum(lens)])
        self.lengths = lens

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: int) -> torch.Tensor:
        start, stop = self._offsets[index], self._offsets[index + 1]
        return torch.from_numpy(self._flat[start:stop])


class BucketBatchSampler(Sampler[list[int]]):
    """Yield index batches of similar sequence length.

    Args:
        lengths: length of every sequence in the dataset.
        batch_size: indices per batch.
        shuffle: random pools and batch order (training); when ``False`` the
            indices are sorted by length once, for deterministic evaluation.
        seed: with :meth:`set_epoch`, fixes the batches of every epoch.
        drop_last: drop the one batch smaller than ``batch_size``.
        pool_batches: batches per sorting pool; larger pools give more uniform
            lengths and less randomness.

    Every index appears exactly once per epoch (except those of a dropped
    last batch).
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool_batches: int = 50,
    ) -> None:
        if batch_size < 1 or pool_batches < 1:
            raise ConfigError(f"batch_size and pool_batches must be >= 1, got {batch_size} and {pool_batches}")
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.pool_batches = int(pool_batches)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the grouping of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._batches():
            yield batch.tolist()

    def _batches(self) -> list[np.ndarray]:
        n, size = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            batches = [order[i : i + size] for i in range(0, n, size)]
            return [b for b in batches if len(b) == size] if self.drop_last else batches
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n)
        # Pools are whole multiples of batch_size, so only the final pool can
        # leave a short batch and drop_last drops at most one.
        pool = size * self.pool_batches
        batches = []
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
        if self.drop_last:
            batches = [b for b in batches if len(b) == size]
        return [batches[i] for i in rng.permutation(len(batches))]


def collate_padded(batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D id tensors into ``(ids [B, T] padded with 0, lengths [B])``, both int64."""
    if not batch:
        raise ConfigError("cannot collate an empty batch; check the sampler")
    seqs = [torch.as_tensor(s, dtype=torch.long) for s in batch]
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    return pad_sequence(seqs, batch_first=True, padding_value=_PAD_ID), lengths
