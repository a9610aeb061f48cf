"""What the MAC's choice of kernel path reads of an operand, in one C pass (lp_operand_stats_*):
finiteness, the least nonzero and largest magnitudes, the significant bits any element has, the
row sums of |x| (the no-overflow bound) and the nonzero counts per row and column (the nonzero
products a matmul counts). `operand_stats_reference` is the numpy rule the C pass equals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..array import adapters as _arrays
from ..kernels.native import ffi, lib

_BIT_LAYOUT = {np.dtype(np.float32): (np.uint32, 0x7F800000, 23), np.dtype(np.float64): (np.uint64, 0x7FF0000000000000, 52)}


@dataclass(frozen=True)
class OperandStats:
    """finite: no Inf or NaN. min_nonzero, max_abs: the least nonzero and the largest |x| among finite
    elements (0 without any). sig_bits: the most significant bits any element has (from the lowest
    set bit of every significand, implicit bit included, OR-ed together; 1 for all zeros).
    row_abs_sums (float64), row_nonzeros, col_nonzeros (int64): per row of x, sum |x| and its
    nonzero count; per column, its nonzero count (NaN counts as nonzero)."""

    finite: bool
    min_nonzero: float
    max_abs: float
    sig_bits: int
    row_abs_sums: np.ndarray
    row_nonzeros: np.ndarray
    col_nonzeros: np.ndarray


def _as_float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if x.dtype in _BIT_LAYOUT else x.astype(np.float64)


def _sig_bits_of(combined: int, mant: int) -> int:
    if combined == 0:
        return 1
    return mant + 1 - ((combined & -combined).bit_length() - 1)


def sig_bits(x: np.ndarray) -> int:
    """The most significant bits any element of x has (24 for full float32, 53 for float64), from the
    lowest set bit of all significands OR-ed together: one pass over x's own bits, bounded scratch."""
    x = _as_float(x)
    utype, exp_mask, mant = _BIT_LAYOUT[x.dtype]
    combined = 0
    for _, _, chunk in _arrays.flat_chunks(x):
        bits = chunk.view(utype)
        frac = bits & utype((1 << mant) - 1)
        implicit = ((bits & utype(exp_mask)) != 0).astype(utype) << utype(mant)
        combined |= int(np.bitwise_or.reduce(frac | implicit, axis=None))
    return _sig_bits_of(combined, mant)


def _new_acc():
    return ffi.new("lp_opstats *", {"finite": 1, "min_nonzero": math.inf, "max_abs": 0.0, "sig_or": 0})


def _accumulate(x: np.ndarray, st, row_abs_sums: np.ndarray, row_nonzeros: np.ndarray,
                col_nonzeros: np.ndarray) -> None:
    """Add 2-D x's statistics into st and the (C-contiguous float64 / int64) arrays: rows strided as
    they are where each row's elements are contiguous (a broadcast row too), else copied a bounded
    block at a time, in float32 / float64 (other dtypes as float64)."""
    rows, cols = x.shape
    sums = ffi.cast("double *", row_abs_sums.ctypes.data)
    row_nz = ffi.cast("int64_t *", row_nonzeros.ctypes.data)
    col_nz = ffi.cast("int64_t *", col_nonzeros.ctypes.data)

    def run(block: np.ndarray, r0: int, c0: int) -> None:
        f32 = block.dtype == np.float32
        fn, ctype = (lib.lp_operand_stats_f32, "float *") if f32 else (lib.lp_operand_stats_f64, "double *")
        ld = block.strides[0] // block.itemsize if block.shape[0] > 1 else 0
        if fn(ffi.cast(ctype, block.ctypes.data), block.shape[0], block.shape[1], ld, st, sums + r0, row_nz + r0,
              col_nz + c0):
            raise RuntimeError("lp_operand_stats refused its arguments (a bug in lowprec)")

    strided_rows = (x.dtype in _BIT_LAYOUT and (cols <= 1 or x.strides[1] == x.itemsize)
                    and (rows <= 1 or (x.strides[0] >= 0 and x.strides[0] % x.itemsize == 0)))
    if x.size and strided_rows:
        run(x, 0, 0)
    elif x.size:  # blocks of at most _arrays.CHUNK elements
        dtype = x.dtype if x.dtype in _BIT_LAYOUT else np.dtype(np.float64)
        cb = min(cols, _arrays.CHUNK)
        rb = max(1, _arrays.CHUNK // cb)
        for r0 in range(0, rows, rb):
            for c0 in range(0, cols, cb):
                run(np.ascontiguousarray(x[r0:r0 + rb, c0:c0 + cb], dtype), r0, c0)


def _finish(st, dtype: np.dtype, row_abs_sums, row_nonzeros, col_nonzeros) -> OperandStats:
    mant = _BIT_LAYOUT[dtype if dtype in _BIT_LAYOUT else np.dtype(np.float64)][2]
    least = float(st.min_nonzero)
    return OperandStats(bool(st.finite), least if math.isfinite(least) else 0.0, float(st.max_abs),
                        _sig_bits_of(int(st.sig_or), mant), row_abs_sums, row_nonzeros, col_nonzeros)


def _check_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"operand_stats takes a 2-D array, got shape {x.shape}")
    return x


def operand_stats(x: np.ndarray) -> OperandStats:
    """x's statistics (2-D; any real dtype, read as float64 unless float32 or float64) in one C pass."""
    x = _check_2d(x)
    rows, cols = x.shape
    arrays = np.zeros(rows), np.zeros(rows, np.int64), np.zeros(cols, np.int64)
    st = _new_acc()
    _accumulate(x, st, *arrays)
    return _finish(st, x.dtype, *arrays)


def matmul_operand_stats(A: np.ndarray, B: np.ndarray) -> tuple[OperandStats, OperandStats, int]:
    """The statistics of A (m x k) and B (k x n) and the count of nonzero products a[i, t] * b[t, j],
    in blocks of k (scratch bounded by m + n + a few blocks of k, so that a long sum's operands need
    no k-long arrays). A's col_nonzeros and B's row_abs_sums and row_nonzeros are not kept (None)."""
    A, B = _check_2d(A), _check_2d(B)
    (m, k), n = A.shape, B.shape[1]
    if B.shape[0] != k:
        raise ValueError(f"matmul_operand_stats: A is {A.shape}, B is {B.shape}")
    a_sums, a_row_nz, b_col_nz = np.zeros(m), np.zeros(m, np.int64), np.zeros(n, np.int64)
    sa, sb = _new_acc(), _new_acc()
    pairs = 0
    step = max(1, min(k, _arrays.CHUNK))
    for t0 in range(0, k, step):
        t = min(step, k - t0)
        a_col_nz, b_sums, b_row_nz = np.zeros(t, np.int64), np.zeros(t), np.zeros(t, np.int64)
        _accumulate(A[:, t0:t0 + t], sa, a_sums, a_row_nz, a_col_nz)
        _accumulate(B[t0:t0 + t], sb, b_sums, b_row_nz, b_col_nz)
        pairs += int(a_col_nz @ b_row_nz)
    return _finish(sa, A.dtype, a_sums, a_row_nz, None), _finish(sb, B.dtype, None, None, b_col_nz), pairs


def _exact_sum(v: np.ndarray) -> float:
    """The correctly rounded sum (math.fsum) of non-negative v: NaN where v holds one, else +Inf where
    the sum overflows."""
    if np.isnan(v).any():
        return math.nan
    try:
        return math.fsum(v)
    except OverflowError:
        return math.inf


def operand_stats_reference(x: np.ndarray) -> OperandStats:
    """The same statistics by numpy (row sums exact, math.fsum): the rule operand_stats follows."""
    x = _as_float(x)
    if x.ndim != 2:
        raise ValueError(f"operand_stats takes a 2-D array, got shape {x.shape}")
    finite = np.isfinite(x)
    mags = np.abs(x[finite & (x != 0)])
    return OperandStats(bool(finite.all()), float(mags.min()) if mags.size else 0.0,
                        float(mags.max()) if mags.size else 0.0, sig_bits(x),
                        np.array([_exact_sum(np.abs(row).astype(np.float64)) for row in x]) if x.size else np.zeros(x.shape[0]),
                        np.count_nonzero(x, axis=1).astype(np.int64), np.count_nonzero(x, axis=0).astype(np.int64))
