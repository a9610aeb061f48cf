"""Pairwise and Kahan accumulation for the MAC simulator, vectorized over outputs in numpy.

Every addition is computed exactly (TwoSum) and rounded to odd in float64, then rounded to the
format by lowprec.quantize, which is the correct rounding of the exact sum (formats of at most 51
bits). Pairwise: level by level, adjacent partial sums (2i, 2i + 1) are added and rounded; an odd
one out at the end of a level moves up unchanged; the leaves are the products rounded to acc.
Stochastic rounding: operation number j of a call draws from seed + j * 0x9E3779B97F4A7C15 by the
element's position, so results do not depend on the thread count.
"""

from __future__ import annotations

import numpy as np

from .._exact import add_rto
from ..array import quantize

_GOLDEN = 0x9E3779B97F4A7C15


class _Rounder:
    def __init__(self, mac):
        self.mac = mac
        self.ops = 0
        self.down = mac.rounding == "down"

    def add(self, s, p):
        return add_rto(s, p, self.down)

    def __call__(self, x, fmt):
        self.ops += 1
        seed = (self.mac.seed + self.ops * _GOLDEN) % 2**64
        return quantize(x, fmt, self.mac.rounding, seed=seed, rbits=self.mac.rbits if self.mac.rounding == "stochastic" else None)


def _pairwise(values: np.ndarray, fmt, q) -> np.ndarray:
    level = q(values, fmt)  # leaves, rounded to acc
    while level.shape[-1] > 1:
        even = level[..., 0: level.shape[-1] // 2 * 2: 2]
        odd = level[..., 1: level.shape[-1] // 2 * 2: 2]
        summed = q(q.add(even, odd), fmt)
        if level.shape[-1] % 2:
            summed = np.concatenate([summed, level[..., -1:]], axis=-1)
        level = summed
    return level[..., 0]


def _kahan(values: np.ndarray, fmt, q) -> np.ndarray:
    s = np.zeros(values.shape[:-1])
    c = np.zeros(values.shape[:-1])
    for t in range(values.shape[-1]):
        y = q(q.add(values[..., t], -c), fmt)
        total = q(q.add(s, y), fmt)
        c = q(q.add(q(q.add(total, -s), fmt), -y), fmt)
        s = total
    return s


def ordered_matmul(mac, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(m, k) @ (k, n) with mac.order in ("pairwise", "kahan"), chunks and all."""
    m, k = A.shape
    n = B.shape[1]
    q = _Rounder(mac)
    reduce = _pairwise if mac.order == "pairwise" else _kahan
    chunk = mac.chunk or k
    out = np.empty((m, n))
    rows = max(1, (1 << 22) // max(1, n * k))  # bound the products held at once (32 MiB)
    for r0 in range(0, m, rows):
        p = A[r0:r0 + rows, None, :] * B.T[None, :, :]  # exact products, (rows, n, k)
        if mac.mul is not None:
            p = q(p, mac.mul)
        total = None
        for c0 in range(0, k, chunk):
            part = reduce(p[..., c0:c0 + chunk], mac.acc, q)
            if mac.chunk:
                total = q(q.add(np.zeros_like(part) if total is None else total, part), mac.chunk_acc)
            else:
                total = part
        out[r0:r0 + rows] = q(total, mac.out)
    return out
