"""Tanimoto similarity of fingerprint sets as blocked matrix products.

Fingerprints travel as packed bits (``np.packbits`` rows). For a block of
query and reference rows, the intersection counts are one matrix product of the
unpacked 0/1 matrices; Tanimoto is ``c / (|a| + |b| - c)``. On the CPU the
product runs in bfloat16, which is exact here: the inputs are 0 or 1 and every
count is an integer no larger than the smaller popcount, and bfloat16 holds the
integers up to 256 exactly. Sets with a fingerprint of more than 256 on-bits
fall back to float32.

Conventions follow MOSES (Polykovskiy et al. 2020): two empty fingerprints have
similarity 1, and IntDiv_p = 1 - mean_i (mean_j T_ij^p)^(1/p) over all ordered
pairs, self-pairs included.

Example::

    >>> import numpy as np
    >>> a = np.packbits(np.array([[1, 1, 0, 0, 0, 0, 0, 0]], dtype=np.uint8), axis=1)
    >>> b = np.packbits(np.array([[1, 0, 1, 0, 0, 0, 0, 0]], dtype=np.uint8), axis=1)
    >>> float(nearest_similarity(a, b, n_bits=8)[0])
    0.3333333432674408
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["nearest_similarity", "internal_diversity", "popcount"]

_EXACT_BF16_COUNT = 256
_QUERY_BLOCK = 2048
_REFERENCE_BLOCK = 8192


def popcount(packed: np.ndarray) -> np.ndarray:
    """Number of on-bits per row of a packed fingerprint matrix."""
    return np.unpackbits(packed, axis=1).sum(axis=1, dtype=np.int64)


def nearest_similarity(
    query: np.ndarray,
    reference: np.ndarray,
    n_bits: int,
    exclude_self: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """Highest Tanimoto similarity of each query row to any reference row.

    Args:
        query, reference: packed fingerprints, shape ``(n, n_bits / 8)``.
        n_bits: fingerprint length.
        exclude_self: ``query`` and ``reference`` are the same set; ignore the
            diagonal (GuacaMol's internal similarity, where it is zero).
        device: torch device for the products.

    Returns:
        ``float32`` array of length ``len(query)``.
    """
    q_count = popcount(query)
    r_count = popcount(reference)
    dtype = _product_dtype(q_count, r_count, device)
    ref_dense = _dense(reference, n_bits, dtype, device)
    ref_count = torch.as_tensor(r_count, dtype=torch.float32, device=device)
    best = np.zeros(len(query), dtype=np.float32)
    for q0 in range(0, len(query), _QUERY_BLOCK):
        q_dense = _dense(query[q0 : q0 + _QUERY_BLOCK], n_bits, dtype, device)
        q_cnt = torch.as_tensor(q_count[q0 : q0 + _QUERY_BLOCK], dtype=torch.float32, device=device)
        row_best = torch.zeros(len(q_dense), dtype=torch.float32, device=device)
        for r0 in range(0, len(ref_dense), _REFERENCE_BLOCK):
            sim = _tanimoto_block(
                q_dense,
                q_cnt,
                ref_dense[r0 : r0 + _REFERENCE_BLOCK],
                ref_count[r0 : r0 + _REFERENCE_BLOCK],
            )
            if exclude_self:
                _zero_diagonal(sim, q0 - r0)
            row_best = torch.maximum(row_best, sim.amax(dim=1))
        best[q0 : q0 + len(q_dense)] = row_best.cpu().numpy()
    if not exclude_self and (r_count == 0).any():
        best[q_count == 0] = 1.0
    return best


def internal_diversity(
    packed: np.ndarray, counts: np.ndarray, n_bits: int, device: str = "cpu"
) -> tuple[float, float]:
    """MOSES IntDiv1 and IntDiv2 of a multiset of fingerprints.

    Args:
        packed: packed fingerprints of the distinct molecules.
        counts: how often each distinct molecule occurs in the set.
        n_bits: fingerprint length.
        device: torch device for the products.

    Returns:
        ``(IntDiv1, IntDiv2)``.
    """
    bit_count = popcount(packed)
    dtype = _product_dtype(bit_count, bit_count, device)
    dense = _dense(packed, n_bits, dtype, device)
    cnt = torch.as_tensor(bit_count, dtype=torch.float32, device=device)
    weight = torch.as_tensor(counts, dtype=torch.float32, device=device)
    # s1[i] = sum_j c_j T_ij, s2[i] = sum_j c_j T_ij^2, using T's symmetry.
    s1 = np.zeros(len(packed))
    s2 = np.zeros(len(packed))
    block = _QUERY_BLOCK * 2
    for i0 in range(0, len(packed), block):
        rows = slice(i0, i0 + block)
        for j0 in range(i0, len(packed), block):
            cols = slice(j0, j0 + block)
            sim = _tanimoto_block(dense[rows], cnt[rows], dense[cols], cnt[cols])
            squared = sim * sim
            s1[rows] += (sim @ weight[cols]).double().cpu().numpy()
            s2[rows] += (squared @ weight[cols]).double().cpu().numpy()
            if j0 != i0:
                s1[cols] += (weight[rows] @ sim).double().cpu().numpy()
                s2[cols] += (weight[rows] @ squared).double().cpu().numpy()
    empty = bit_count == 0
    if empty.any():
        # MOSES counts two empty fingerprints as identical (similarity 1).
        s1[empty] += counts[empty].sum()
        s2[empty] += counts[empty].sum()
    total = float(np.sum(counts))
    weights = np.asarray(counts, dtype=np.float64)
    intdiv1 = 1.0 - float(np.sum(weights * s1 / total)) / total
    intdiv2 = 1.0 - float(np.sum(weights * np.sqrt(s2 / total))) / total
    return intdiv1, intdiv2


def _tanimoto_block(
    a: torch.Tensor, a_count: torch.Tensor, b: torch.Tensor, b_count: torch.Tensor
) -> torch.Tensor:
    inter = (a @ b.T).float()
    union = a_count[:, None] + b_count[None, :]
    union.sub_(inter).clamp_(min=1.0)
    return inter.div_(union)


def _zero_diagonal(sim: torch.Tensor, offset: int) -> None:
    """Zero the entries (i, i + offset) of a block, where the query and reference rows coincide."""
    rows = torch.arange(sim.shape[0], device=sim.device)
    cols = rows + offset
    keep = (cols >= 0) & (cols < sim.shape[1])
    sim[rows[keep], cols[keep]] = 0.0


def _dense(packed: np.ndarray, n_bits: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    bits = np.unpackbits(np.ascontiguousarray(packed), axis=1, count=n_bits)
    return torch.from_numpy(bits).to(device=device, dtype=dtype)


def _product_dtype(count_a: np.ndarray, count_b: np.ndarray, device: str) -> torch.dtype:
    largest = min(int(count_a.max(initial=0)), int(count_b.max(initial=0)))
    if torch.device(device).type == "cpu" and largest <= _EXACT_BF16_COUNT:
        return torch.bfloat16
    return torch.float32
