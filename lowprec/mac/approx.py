"""Approximate multipliers as product tables over b-bit signed integers (two's complement codes, as
lowprec.encode gives them for "int<b>"; sign-magnitude inside: |a| x |b| approximated, the sign
applied), ready for ``MAC(mul=table, inputs=("int8", "int8"), acc="int32")``; and Mitchell's
logarithmic multiplier on floating-point values as a numba scalar (``mitchell_fp``).

- Mitchell (J. N. Mitchell, "Computer multiplication and division using binary logarithms", IRE Trans.
  Electronic Computers, 1962): a = 2**k1 (1 + x1), log2 a ~ k1 + x1; the product 2**(k1+k2) (1 + x1 + x2)
  when x1 + x2 < 1, else 2**(k1+k2+1) (x1 + x2). Never above the exact product; at worst 1/9 below
  (x1 = x2 = 1/2).
- Truncated (the fixed-width multipliers of the literature, e.g. Schulte and Swartzlander, "Truncated
  multiplication with correction constant", VLSI Signal Processing VI, 1993, without the constant): the
  partial-product bits of the columns below `cut` are dropped.
- Broken-array (BAM: Mahdiani, Ahmadi, Fakhraie and Lucas, "Bio-inspired imprecise computational
  blocks for efficient VLSI implementation of soft-computing applications", IEEE TCAS-I, 2010): the
  array multiplier without the carry-save cells of its lowest `hbl` partial-product rows (multiplier
  bits) and of the columns below `vbl`; hbl=0 is the truncated multiplier with cut=vbl.
- DRUM (Hashemi, Bahar and Reda, "DRUM: a dynamic range unbiased multiplier for approximate
  applications", ICCAD 2015): each operand keeps the k bits from its leading one, the lowest of them
  set to 1 (unbiasing the truncation), the k x k product shifted back; exact below 2**k.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mitchell", "truncated", "broken_array", "drum", "table", "mitchell_fp"]


def _magnitudes(bits: int) -> np.ndarray:
    """The value of each code 0 .. 2**bits - 1 of a b-bit two's complement integer."""
    codes = np.arange(2**bits, dtype=np.int64)
    return np.where(codes >= 2 ** (bits - 1), codes - 2**bits, codes)


def mitchell(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mitchell's product of nonnegative integers (float64; exact where one is a power of two)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    out = np.zeros(np.broadcast(a, b).shape)
    both = (a > 0) & (b > 0)
    a, b = np.broadcast_to(a, out.shape)[both], np.broadcast_to(b, out.shape)[both]
    k1, k2 = np.floor(np.log2(a)), np.floor(np.log2(b))
    x1, x2 = a / 2**k1 - 1, b / 2**k2 - 1
    s = x1 + x2
    out[both] = np.where(s < 1, 2 ** (k1 + k2) * (1 + s), 2 ** (k1 + k2 + 1) * s)
    return out


def truncated(a: np.ndarray, b: np.ndarray, bits: int, cut: int) -> np.ndarray:
    """The product of nonnegative `bits`-bit integers without the partial-product bits of columns < cut."""
    return broken_array(a, b, bits, vbl=cut)


def broken_array(a: np.ndarray, b: np.ndarray, bits: int, vbl: int, hbl: int = 0) -> np.ndarray:
    """BAM's product of nonnegative `bits`-bit integers: the partial-product bit a_i b_j (column i + j)
    kept only where j >= hbl and i + j >= vbl."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    total = np.zeros(np.broadcast(a, b).shape, np.int64)
    for i in range(bits):
        for j in range(hbl, bits):
            if i + j >= vbl:
                total += (((a >> i) & 1) & ((b >> j) & 1)) << (i + j)
    return total


def drum(a: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """DRUM's product of nonnegative integers with k-bit segments."""
    def segment(x):
        x = np.asarray(x, np.int64)
        lead = np.where(x > 0, np.floor(np.log2(np.maximum(x, 1))).astype(np.int64), 0)
        shift = np.maximum(lead - k + 1, 0)
        seg = np.where(shift > 0, (x >> shift) | 1, x)
        return seg, shift

    sa, ha = segment(a)
    sb, hb = segment(b)
    return (sa * sb) << (ha + hb)


def table(kind: str, bits: int = 8, **params: int) -> np.ndarray:
    """The (2**bits, 2**bits) product table of an approximate multiplier over b-bit two's complement codes:
    kind "exact", "mitchell", "truncated" (cut=), "broken_array" (vbl=, hbl=), "drum" (k=)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 12:
        raise ValueError(f"bits must be an int in [2, 12] (a table of 2**(2 bits) entries), got {bits!r}")
    v = _magnitudes(bits)
    a, b = np.abs(v)[:, None], np.abs(v)[None, :]
    sign = np.sign(v)[:, None] * np.sign(v)[None, :]
    if kind == "exact":
        mag = a * b
    elif kind == "mitchell":
        mag = mitchell(a, b)
    elif kind == "truncated":
        mag = truncated(a, b, bits, params.get("cut", bits - 1))
    elif kind == "broken_array":
        mag = broken_array(a, b, bits, params.get("vbl", bits - 1), params.get("hbl", 0))
    elif kind == "drum":
        mag = drum(a, b, params.get("k", math.ceil(bits / 2)))
    else:
        raise ValueError(f"kind must be one of 'exact', 'mitchell', 'truncated', 'broken_array', 'drum'; got {kind!r}")
    return (sign * mag).astype(np.float64)


def _mitchell_fp(a: float, b: float) -> float:
    """Mitchell on floating-point values: the significands' product 1 + x1 + x2 (or 2 (x1 + x2) past 2)."""
    if a == 0.0 or b == 0.0:
        return 0.0 * a * b
    ma, ea = math.frexp(abs(a))  # a = ma 2**ea, ma in [0.5, 1)
    mb, eb = math.frexp(abs(b))
    x1, x2 = 2.0 * ma - 1.0, 2.0 * mb - 1.0
    s = x1 + x2
    mag = math.ldexp(1.0 + s, ea + eb - 2) if s < 1.0 else math.ldexp(s, ea + eb - 1)
    return mag if (a > 0) == (b > 0) else -mag


try:  # the numba-compiled twin where numba is installed (the MAC compiles a plain function itself)
    import numba as _nb

    mitchell_fp = _nb.njit(cache=True)(_mitchell_fp)
except ImportError:
    mitchell_fp = _mitchell_fp
