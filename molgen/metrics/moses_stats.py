"""The precomputed statistics of the MOSES test sets, read without running pickled code.

The ``molsets`` wheel ships ``test_stats.npz`` and ``test_scaffolds_stats.npz``
(``molgen data moses`` copies them into the cache): what MOSES's
``get_all_metrics`` compares a generated set with, computed once by its
authors. Each holds one pickled dictionary::

    {"FCD": {"mu": float32[512], "sigma": float64[512, 512]},
     "SNN": {"fps": uint8[n, 1024]},          # one unpacked Morgan fingerprint per molecule
     "Frag": {"frag": Counter}, "Scaf": {"scaf": Counter},
     "logP" | "SA" | "QED" | "weight": {"values": list[float]}}

``numpy.load`` would need ``allow_pickle=True``, which runs whatever the
file names. :func:`read_moses_stats` instead unpickles with a whitelist of
the five constructors such a file uses (NumPy arrays and dtypes, byte
strings, ``Counter``), so a tampered file fails with :class:`DataError`
rather than executing code.

Example::

    >>> stats = read_moses_stats("~/.cache/molgen/moses/test_stats.npz")  # doctest: +SKIP
    >>> stats.fcd_sigma.shape  # doctest: +SKIP
    (512, 512)
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from molgen.errors import DataError
from molgen.metrics.set_statistics import METRICS_VERSION, SetStatistics

__all__ = ["MosesStats", "read_moses_stats"]

#: The constructors a MOSES statistics pickle may name; anything else is refused.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): ("_codecs", "encode"),
    ("collections", "Counter"): ("collections", "Counter"),
}


@dataclass
class MosesStats:
    """One MOSES statistics file, as arrays (see the module docstring)."""

    fcd_mu: np.ndarray
    fcd_sigma: np.ndarray
    fingerprints: np.ndarray  # packed, uint8 [n, 128], in the order of the split's file
    fragments: Counter
    scaffolds: Counter
    properties: np.ndarray  # float64 [n, 4]: logP, SA, QED, weight


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        target = _ALLOWED.get((module, name))
        if target is None:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a MOSES statistics file")
        return super().find_class(*target)


def read_moses_stats(path: str | os.PathLike) -> MosesStats:
    """Read a MOSES ``*_stats.npz`` file (from the ``molsets`` 0.3.1 wheel).

    Raises:
        DataError: the file is missing, damaged, or holds anything but the
            arrays and counters MOSES writes.
    """
    path = Path(path).expanduser()
    fix = "run `molgen data moses` again to restore it"
    try:
        with zipfile.ZipFile(path) as archive:
            # One read of the whole member: the unpickler's many small reads of a
            # compressed stream cost several times the decompression itself.
            handle = io.BytesIO(archive.read("stats.npy"))
            major, _ = npy_format.read_magic(handle)
            read_header = npy_format.read_array_header_1_0 if major == 1 else npy_format.read_array_header_2_0
            shape, _, dtype = read_header(handle)
            if dtype != np.dtype(object) or shape != ():
                raise DataError(f"{path} is not a MOSES statistics file (holds a {dtype} array); {fix}")
            stats = _Unpickler(handle).load()
        stats = stats.item() if isinstance(stats, np.ndarray) else stats
        properties = np.column_stack(
            [np.asarray(stats[name]["values"], dtype=np.float64) for name in ("logP", "SA", "QED", "weight")]
        )
        return MosesStats(
            fcd_mu=np.asarray(stats["FCD"]["mu"]),
            fcd_sigma=np.asarray(stats["FCD"]["sigma"], dtype=np.float64),
            fingerprints=np.packbits(np.asarray(stats["SNN"]["fps"], dtype=np.uint8), axis=1),
            fragments=Counter(stats["Frag"]["frag"]),
            scaffolds=Counter(stats["Scaf"]["scaf"]),
            properties=properties,
        )
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"MOSES statistics file {path} not found; {fix}") from None
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, KeyError, TypeError, EOFError) as exc:
        raise DataError(f"{path} is not a readable MOSES statistics file ({exc}); {fix}") from None


# -- the MOSES test sets without a pass over their molecules ---------------------

_KEY_SEPARATOR = "\n"


def reference_parts_path(split: str) -> Path:
    """``data/moses_<split>_parts.npz`` (``molgen/_data`` when installed): molgen's parts of a MOSES test set's statistics."""
    from molgen.pretrained import data_dir

    return data_dir() / f"moses_{split}_parts.npz"


def write_reference_parts(stats, digest: str, stats_digest: str, path: str | os.PathLike, with_fcd: bool) -> None:
    """Save the parts of ``stats`` the wheel's statistics file lacks or has in another form.

    Fragment and scaffold counts (canonical SMILES depend on the RDKit
    version), the GuacaMol KL sample, the filter flags unless
    ``stats.passes_filters`` is ``None``, and with ``with_fcd`` the ChemNet
    mean and covariance. ``digest`` and
    ``stats_digest`` are the sha256 of the split's ``.csv.gz`` and of its
    ``*_stats.npz``: the parts are used only with exactly those files.
    """
    arrays = {
        "digest": np.array(digest),
        "stats_digest": np.array(stats_digest),
        "metrics_version": np.array(METRICS_VERSION),
        "counts": stats.counts.astype(np.int32),
        "fragment_keys": _join(stats.fragment_keys),
        "fragment_counts": stats.fragment_counts.astype(np.int32),
        "scaffold_keys": _join(stats.scaffold_keys),
        "scaffold_counts": stats.scaffold_counts.astype(np.int32),
        "kl_descriptors": stats.kl_descriptors,
        "kl_max_similarity": stats.kl_max_similarity,
    }
    if stats.passes_filters is not None:
        arrays["passes_filters"] = np.packbits(stats.passes_filters)
    if with_fcd:
        arrays.update(fcd_mu=stats.fcd_mu, fcd_sigma=stats.fcd_sigma)
    np.savez_compressed(path, **arrays)


def shipped_reference_statistics(split: str, digest: str, source: Path, parts: Path | None = None):
    """A MOSES test set's :class:`~molgen.metrics.reference.SetStatistics` without a pass over it.

    Fingerprints and properties come from the wheel's ``<split>_stats.npz``
    next to ``source`` (the same numbers molgen computes, see
    ``docs/benchmarks.md``), the rest from ``data/moses_<split>_parts.npz``.
    Returns ``None`` (compute them instead) when either file is missing or
    is not for exactly this ``source`` (``digest``: its sha256).
    """
    import hashlib

    parts = parts or reference_parts_path(split)
    wheel_file = source.parent / f"{split}_stats.npz"
    if not parts.is_file() or not wheel_file.is_file():
        return None
    with np.load(parts, allow_pickle=False) as data:
        shipped = {name: data[name] for name in data.files}
    if str(shipped["digest"]) != digest or str(shipped["metrics_version"]) != METRICS_VERSION:
        return None
    if hashlib.sha256(wheel_file.read_bytes()).hexdigest() != str(shipped["stats_digest"]):
        return None
    wheel = read_moses_stats(wheel_file)
    counts = shipped["counts"].astype(np.int64)
    if len(counts) != len(wheel.fingerprints):
        return None
    fcd = (shipped["fcd_mu"], shipped["fcd_sigma"]) if "fcd_mu" in shipped else (wheel.fcd_mu, wheel.fcd_sigma)
    return SetStatistics(
        n_molecules=int(counts.sum()),
        counts=counts,
        fingerprints=wheel.fingerprints,
        properties=wheel.properties,
        passes_filters=_filters(shipped, len(counts)),
        fcd_mu=np.asarray(fcd[0], dtype=np.float64),
        fcd_sigma=np.asarray(fcd[1], dtype=np.float64),
        fragment_keys=_split(shipped["fragment_keys"]),
        fragment_counts=shipped["fragment_counts"].astype(np.int64),
        scaffold_keys=_split(shipped["scaffold_keys"]),
        scaffold_counts=shipped["scaffold_counts"].astype(np.int64),
        kl_descriptors=shipped["kl_descriptors"],
        kl_max_similarity=shipped["kl_max_similarity"],
    )


def _filters(shipped: dict, n: int) -> np.ndarray:
    if "passes_filters" in shipped:
        return np.unpackbits(shipped["passes_filters"], count=n).astype(bool)
    # No metric reads a reference's filter flags, and computing them is the slowest part of a
    # pass over 176k molecules; parts made without them mark every molecule as failing.
    return np.zeros(n, dtype=bool)


def _join(keys: np.ndarray) -> np.ndarray:
    # One UTF-8 blob: a NumPy string array pads every key to the longest (4 bytes a character).
    return np.frombuffer(_KEY_SEPARATOR.join(keys.tolist()).encode(), dtype=np.uint8)


def _split(blob: np.ndarray) -> np.ndarray:
    text = blob.tobytes().decode()
    return np.array(text.split(_KEY_SEPARATOR) if text else [], dtype=np.str_)
