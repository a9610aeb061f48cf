"""MACs on coded operands: lookup-table MACs (a product table indexed by the two codes) and
logarithmic MACs (a multiply is an add of exponents and an xor of signs), DESIGN.md section 4.

Both form each product as the hardware does, then accumulate the products exactly as a ``lowprec.MAC``
sums (its acc, chunk, chunk_acc, order, rounding and out; its own mul is not used: these units do not
multiply). The MAC's counts record the products under ``mul["lut<bits>x<bits>"]`` or
``mul["log<bits>x<bits>"]`` (products with a zero operand are in ``zero_products``, skipped), and the adds and
roundings of the accumulation as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._exact import multiply_round_odd
from ..array import adapters as _arrays
from ..array import quantize
from ..formats import LogFormat, LUTFormat
from .unit import MAC

__all__ = ["product_table", "lut_matmul", "log_matmul"]

_EXACT_MAC = dict(acc=None)


def product_table(fmt_a: LUTFormat, fmt_b: LUTFormat, product: Any = None) -> np.ndarray:
    """P[i, j] = entry i of a's codebook times entry j of b's (per-tensor codebooks), rounded once to
    float64 or, if given, to the `product` format (the precision of the hardware's table)."""
    for name, f in (("fmt_a", fmt_a), ("fmt_b", fmt_b)):
        if not isinstance(f, LUTFormat) or f.per_channel:
            raise TypeError(f"{name} must be a per-tensor LUTFormat (or LogFormat), got {f!r}")
    a, b = np.meshgrid(fmt_a.codebook, fmt_b.codebook, indexing="ij")
    if product is None:
        return a * b

    return quantize(multiply_round_odd(a, b), product)


def _codes(x: Any, fmt: LUTFormat, name: str) -> np.ndarray:
    arr, _ = _arrays.read_codes(x, name)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= fmt.entries):
        raise ValueError(f"{name} holds codes outside [0, {fmt.entries})")
    return arr.astype(np.intp)


def _accumulate(products_of, m: int, n: int, k: int, mac: MAC, label: str, skips_zeros: bool) -> np.ndarray:
    """Sum products_of(rows) (shape (rows, n, k)) along k with mac's accumulation, rows at a time,
    recorded as `label` products (all of them, or the nonzero ones for a unit that skips zeros)."""
    out = np.empty((m, n), np.float64)
    step = max(1, (1 << 22) // max(1, n * k))
    for r0 in range(0, m, step):
        rows = np.arange(r0, min(m, r0 + step))
        values = products_of(rows)
        executed = int(np.count_nonzero(values)) if skips_zeros else values.size
        out[rows] = mac.sum_products(values, label, executed)
    return out


def lut_matmul(a_codes: Any, b_codes: Any, fmt_a: LUTFormat, fmt_b: LUTFormat, mac: MAC | None = None,
               product: Any = None) -> np.ndarray:
    """(m, k) @ (k, n) of codebook codes: each product read from product_table(fmt_a, fmt_b, product),
    summed by `mac` (default: exactly, then rounded to float64). float64 result."""
    mac = mac if mac is not None else MAC(**_EXACT_MAC)
    A, B = _codes(a_codes, fmt_a, "a_codes"), _codes(b_codes, fmt_b, "b_codes")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"a_codes {A.shape} and b_codes {B.shape} do not chain (k differs)")
    table = product_table(fmt_a, fmt_b, product)
    m, k = A.shape
    n = B.shape[1]
    return _accumulate(lambda rows: table[A[rows][:, None, :], B.T[None, :, :]], m, n, k, mac,
                       f"lut{fmt_a.bits}x{fmt_b.bits}", False)


def log_matmul(a_codes: Any, b_codes: Any, fmt_a: LogFormat, fmt_b: LogFormat, mac: MAC | None = None) -> np.ndarray:
    """(m, k) @ (k, n) of LogFormat codes: the product of +-2**(ea/ka) and +-2**(eb/kb) is
    +-2**(ea/ka + eb/kb) by an exponent add (exact; a fractional sum is converted with exp2, within
    an ulp of float64), zero when an operand is; summed by `mac` (default exactly). float64 result."""
    for name, f in (("fmt_a", fmt_a), ("fmt_b", fmt_b)):
        if not isinstance(f, LogFormat):
            raise TypeError(f"{name} must be a LogFormat, got {f!r}")
    mac = mac if mac is not None else MAC(**_EXACT_MAC)
    A, B = _codes(a_codes, fmt_a, "a_codes"), _codes(b_codes, fmt_b, "b_codes")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"a_codes {A.shape} and b_codes {B.shape} do not chain (k differs)")

    def parts(fmt: LogFormat) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per code: sign (+-1), exponent numerator e (value 2**(e/k)), and whether it is zero."""
        book = fmt.codebook
        e = np.round(np.log2(np.where(book != 0, np.abs(book), 1.0)) * fmt.k).astype(np.int64)
        return np.sign(book), e, book == 0

    sa, ea, za = parts(fmt_a)
    sb, eb, zb = parts(fmt_b)
    den = fmt_a.k * fmt_b.k
    m, k = A.shape
    n = B.shape[1]

    def products_of(rows):
        ia, ib = A[rows][:, None, :], B.T[None, :, :]
        num = ea[ia] * fmt_b.k + eb[ib] * fmt_a.k  # the exponent add, in units of 1 / (ka * kb)
        mag = np.ldexp(1.0, num // den) * np.where(num % den, np.exp2((num % den) / den), 1.0)
        return np.where(za[ia] | zb[ib], 0.0, sa[ia] * sb[ib] * mag)

    # a log unit multiplies only nonzero operands: a zero code gates the exponent add
    return _accumulate(products_of, m, n, k, mac, f"log{fmt_a.log_bits}x{fmt_b.log_bits}", True)
