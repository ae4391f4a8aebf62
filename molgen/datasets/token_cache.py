"""On-disk cache of tokenised training sets, memory-mapped on later runs.

Tokenising the 1.6 M-molecule MOSES training set into SELFIES takes minutes
of CPU; loading the cached arrays takes well under a second, because the id
matrix is memory-mapped rather than read. An entry is keyed by everything the
result depends on (the molecules in order, the representation, the length
limit and, when given, the vocabulary), so a stale entry cannot be hit.

Layout of ``<cache>/tokens/<key>/``: ``ids.npy`` (``[N, T]`` padded ids, the
smallest integer type that holds the vocabulary), ``lengths.npy``,
``kept.npy`` (indices of the input molecules that were kept) and
``meta.json`` (format version, vocabulary, skip counts). Entries are written
to a temporary folder and renamed into place, so an interrupted write leaves
no entry, and plain ``.npy`` files are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CachedTokens", "token_cache_key", "load_tokens", "save_tokens", "default_token_cache"]

FORMAT_VERSION = 1


@dataclass
class CachedTokens:
    ids: np.ndarray  # [N, T], memory-mapped when loaded
    lengths: np.ndarray  # [N]
    kept: np.ndarray  # [N] indices into the input list
    vocab: dict[str, Any]
    skipped: dict[str, int]


def default_token_cache() -> Path:
    """``$MOLGEN_CACHE/tokens``, else ``~/.cache/molgen/tokens``."""
    root = os.environ.get("MOLGEN_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "molgen") / "tokens"


def token_cache_key(
    smiles: Sequence[str], representation: str, max_length: int, vocab: dict[str, Any] | None
) -> str:
    """A digest of the inputs the tokenised arrays depend on."""
    digest = hashlib.sha256()
    header = {"v": FORMAT_VERSION, "repr": representation, "max_length": max_length, "vocab": vocab}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for s in smiles:
        digest.update(s.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()[:32]


def load_tokens(key: str, cache_dir: Path) -> CachedTokens | None:
    """The cached entry for ``key``, or ``None`` when absent or unreadable (it is then rebuilt)."""
    folder = cache_dir / key
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            return None
        ids = np.load(folder / "ids.npy", mmap_mode="r", allow_pickle=False)
        lengths = np.load(folder / "lengths.npy", allow_pickle=False)
        kept = np.load(folder / "kept.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError):
        return None
    if not (len(ids) == len(lengths) == len(kept) == meta.get("n")):
        return None
    return CachedTokens(ids, lengths, kept, meta["vocab"], meta["skipped"])


def save_tokens(key: str, cache_dir: Path, entry: CachedTokens) -> Path | None:
    """Write an entry atomically; a cache that cannot be written is skipped, not an error."""
    folder = cache_dir / key
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
        try:
            dtype = np.uint8 if len(entry.vocab["tokens"]) < 2**8 else np.int32
            np.save(tmp / "ids.npy", np.asarray(entry.ids, dtype=dtype))
            np.save(tmp / "lengths.npy", np.asarray(entry.lengths, dtype=np.int32))
            np.save(tmp / "kept.npy", np.asarray(entry.kept, dtype=np.int64))
            meta = {
                "format_version": FORMAT_VERSION,
                "n": len(entry.lengths),
                "vocab": entry.vocab,
                "skipped": entry.skipped,
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            if folder.exists():  # an unreadable or outdated entry is replaced
                shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        return None
    return folder
