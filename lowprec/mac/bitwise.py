"""Binary and ternary MACs on packed bits (DESIGN.md section 4.7).

Binary operands are +-1: one bit each (1 for +1), packed 8 to a byte along the reduction axis;
a dot product is 2 * popcount(xnor(a, b)) - K. Ternary operands are -1, 0, +1: two bit planes
(nonzero, negative); products with a zero operand are skipped, the others are +1 where the signs
agree and -1 where they differ. Both give exactly the integer dot product of the decoded values.
"""

from __future__ import annotations

import numpy as np

from ..array import adapters as _arrays
from .counts import Counts


def pack_binary(x, axis: int = -1) -> np.ndarray:
    """+-1 values to bits along `axis` (1 for +1), packed into uint8, the axis padded to 8."""
    v = _values(x, "x", (-1.0, 1.0))
    return np.packbits(np.moveaxis(v, axis, -1) > 0, axis=-1)


def pack_ternary(x, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """-1/0/+1 values to two packed bit planes along `axis`: (nonzero, negative)."""
    v = np.moveaxis(_values(x, "x", (-1.0, 0.0, 1.0)), axis, -1)
    return np.packbits(v != 0, axis=-1), np.packbits(v < 0, axis=-1)


def _values(x, name, allowed) -> np.ndarray:
    arr, _ = _arrays.to_numpy(x, name)
    bad = ~np.isin(arr, allowed)
    if bad.any():
        raise ValueError(f"{name} must hold only {', '.join(f'{v:g}' for v in allowed)}; found {arr[bad].ravel()[0]!r}")
    return arr


def _popcount(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.bitwise_count(x).sum(axis=axis, dtype=np.int64)


def _check(a: np.ndarray, b: np.ndarray) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError(f"need 2-D operands (m, k) and (k, n); got shapes {a.shape} and {b.shape}")


def binary_matmul(a, b, counts: Counts | None = None) -> np.ndarray:
    """(m, k) @ (k, n) of +-1 matrices by XNOR-popcount on packed bits; int64 result. `counts` (a
    lowprec.mac.Counts), if given, receives what was executed (see _record); cost.report prices it."""
    A, _ = _arrays.to_numpy(a, "a")
    B, _ = _arrays.to_numpy(b, "b")
    _check(A, B)
    k = A.shape[1]
    pa = pack_binary(A, axis=1)  # (m, kb)
    pb = pack_binary(B, axis=0)  # (n, kb)
    pad = pa.shape[1] * 8 - k  # padding bits are 0 in both: their xnor is 1, subtracted below
    out = np.empty((A.shape[0], B.shape[1]), np.int64)
    rows = max(1, (1 << 24) // max(1, pb.size))
    for r0 in range(0, A.shape[0], rows):
        xnor = ~(pa[r0:r0 + rows, None, :] ^ pb[None, :, :])
        agree = _popcount(xnor) - pad
        out[r0:r0 + rows] = 2 * agree - k
    _record(counts, "binary", A.shape[0], B.shape[1], k, 0, 8 * (pa.size + pb.size))
    return out


def ternary_matmul(a, b, counts: Counts | None = None) -> np.ndarray:
    """(m, k) @ (k, n) of -1/0/+1 matrices on 2-bit codes, zero products skipped; int64 result.
    `counts` (a lowprec.mac.Counts), if given, receives what was executed, the skipped products as
    zero_products (cost.report(..., skip_zeros=True) leaves them out)."""
    A, _ = _arrays.to_numpy(a, "a")
    B, _ = _arrays.to_numpy(b, "b")
    _check(A, B)
    nza, nga = pack_ternary(A, axis=1)
    nzb, ngb = pack_ternary(B, axis=0)
    out = np.empty((A.shape[0], B.shape[1]), np.int64)
    executed = 0
    rows = max(1, (1 << 24) // max(1, nzb.size))
    for r0 in range(0, A.shape[0], rows):
        both = nza[r0:r0 + rows, None, :] & nzb[None, :, :]
        differ = both & (nga[r0:r0 + rows, None, :] ^ ngb[None, :, :])
        nonzero = _popcount(both)
        out[r0:r0 + rows] = nonzero - 2 * _popcount(differ)
        executed += int(nonzero.sum())
    total = A.shape[0] * B.shape[1] * A.shape[1]
    _record(counts, "ternary", A.shape[0], B.shape[1], A.shape[1], total - executed, 8 * (2 * nza.size + 2 * nzb.size))
    return out


def _record(counts: Counts | None, kind: str, m: int, n: int, k: int, zero_products: int, bits_read: int) -> None:
    """Into a Counts: m*n*k products of the kind ("binary": an XNOR slice; "ternary": sign select and
    zero gate), the same number of adds into the popcount accumulator (a (k.bit_length() + 1)-bit
    integer: results lie in [-k, k]), the products with a zero operand, the packed bits read and the
    int64 results written at the accumulator's width."""
    if counts is None:
        return
    if not isinstance(counts, Counts):
        raise TypeError(f"counts must be a lowprec.mac.Counts (lowprec.mac.Counts()), got {type(counts).__name__}")
    width = k.bit_length() + 1
    acc = f"q{width}.0"
    counts.record(mul={kind: m * n * k}, add={acc: m * n * k}, zero_products=zero_products, bits_read=bits_read,
                  bits_written=m * n * width, elements_read=m * k + k * n, elements_written=m * n, calls=1)
