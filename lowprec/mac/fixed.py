"""Integer and fixed-point accumulation at compiled speed: the MAC's fixed-point rule (every step
s + p rounded to the accumulator's grid in the MAC's mode, then wrapped or saturated as its format
says, each overflow counted) in exact arithmetic, for operands that are integers after a power-of-two
scaling (int8 values, fixed-point values, low-precision floats of a narrow range): float32 lanes in C
(lp_fixed_sums_f32) where every value stays below 2**24, int64 lanes (numba) elsewhere; BLAS where no
partial sum can leave the range. Where the products' units are finer than the grid, each step rounds
in integers (numba).

``fixed_matmul`` returns None where this does not apply (stochastic rounding, a product format,
operands that do not scale to integers of at most 26 bits, sums that leave float64's exact range):
the caller's numpy rule runs then, with the same results (both are exact where this one applies).
"""

from __future__ import annotations

import math

import numpy as np

from ..formats import FixedFormat
from ..kernels import jit
from ..kernels.native import ffi, lib
from ..kernels.threads import get_num_threads

_KERNELS: dict = {}
MODES = {"nearest_even": 0, "nearest_away": 1, "toward_zero": 2, "up": 3, "down": 4, "odd": 5}


def kernels() -> dict:
    """The compiled pieces (built on first use: importing lowprec does not import numba)."""
    if not _KERNELS:
        numba = jit.numba_module()

        @numba.njit(inline="always")
        def round_units(t, shift, mode):
            """t * 2**-shift rounded to an integer in the mode (shift >= 1)."""
            q = t >> shift  # floor
            r = t - (q << shift)
            if r == 0:
                return q
            half = np.int64(1) << (shift - 1)
            if mode == 0:
                return q + 1 if r > half or (r == half and (q & 1) == 1) else q
            if mode == 1:
                return q + 1 if r > half or (r == half and t >= 0) else q
            trunc = q + 1 if t < 0 else q  # toward zero
            if mode == 2:
                return trunc
            if mode == 3:
                return q + 1
            if mode == 4:
                return q
            if (trunc & 1) == 0:  # odd: the odd one of the two neighbours
                return trunc - 1 if t < 0 else trunc + 1
            return trunc

        @numba.njit(inline="always")
        def into_range(v, lo, hi, saturate):
            """(v wrapped or saturated into [lo, hi], 1 if it was outside else 0)."""
            if lo <= v <= hi:
                return v, 0
            if saturate:
                return (hi if v > hi else lo), 1
            return (v - lo) % (hi - lo + 1) + lo, 1

        @numba.njit(parallel=True, cache=True)
        def sums(a, bt, out, overflows, shift, lo, hi, saturate, mode):
            m, k = a.shape
            n = bt.shape[0]
            for i in numba.prange(m):
                count = 0
                for j in range(n):
                    s = np.int64(0)
                    for t in range(k):
                        p = a[i, t] * bt[j, t]
                        v = s + p if shift == 0 else round_units((s << shift) + p, shift, mode)
                        s, o = into_range(v, lo, hi, saturate)
                        count += o
                    out[i, j] = s
                overflows[i] = count

        @numba.njit(parallel=True, cache=True)
        def sums_units(a, b, out, overflows, lo, hi, saturate):
            """sums for products on the grid (shift 0): one row's outputs advance a k-step together,
            branch-free, so that the column loop vectorizes; each output's steps stay in k order."""
            m, k = a.shape
            n = b.shape[1]
            span = hi - lo + 1
            mask = span - 1 if span & (span - 1) == 0 else -1  # a power of two (every width's): wrap by a mask
            for i in numba.prange(m):
                s = np.zeros(n, np.int64)
                count = 0
                for t in range(k):
                    av = a[i, t]
                    for j in range(n):
                        v = s[j] + av * b[t, j]
                        inside = (v >= lo) & (v <= hi)
                        if saturate:
                            w = min(max(v, lo), hi)
                        elif mask >= 0:
                            w = ((v - lo) & mask) + lo
                        else:
                            w = (v - lo) % span + lo
                        s[j] = v if inside else w
                        count += 0 if inside else 1
                for j in range(n):
                    out[i, j] = s[j]
                overflows[i] = count

        _KERNELS.update(sums=sums, sums_units=sums_units, into_range=into_range)
    return _KERNELS


def _exact_float(x: np.ndarray) -> np.ndarray:
    """x itself if float32, else as float64 (a copy where it is not float64 already)."""
    return x if x.dtype == np.float32 else np.asarray(x, np.float64)


def _integer_scale(x: np.ndarray) -> tuple[np.ndarray, int] | None:
    """(x * 2**f, f) with the smallest f >= 0 making every value an integer (exact, in x's float type:
    float32 or float64), or None (a non-finite value, or a scaled value of more than 26 bits)."""
    big = float(np.abs(x).max(initial=0))
    if not math.isfinite(big) or big >= 2.0**26:
        return None
    if np.array_equal(x, np.rint(x)):  # integers already (the common case): f = 0
        return x, 0
    nz = x[x != 0]
    _, exps = np.frexp(nz)  # |v| in [2**(e-1), 2**e)
    mant = np.ldexp(nz, 53 - exps).astype(np.int64)  # the 53-bit significands as integers, exact
    low = np.abs(mant) & -np.abs(mant)  # each one's lowest set bit
    units = (exps.astype(np.int64) - 53) + np.log2(low.astype(np.float64)).astype(np.int64)
    f = max(0, -int(units.min()))
    scaled = np.ldexp(x, f)
    if float(np.abs(scaled).max()) >= 2.0**26:
        return None
    return scaled, f


def _scaled(x: np.ndarray, e: int) -> np.ndarray:
    """x * 2**e in x's dtype: exact for the integers and grid values here (|e| <= 53: nothing leaves the
    normal range); a multiplication, 10x numpy's ldexp."""
    return x * x.dtype.type(2.0**e)


def _sums_f32(ai: np.ndarray, bi: np.ndarray, lo: int, hi: int, span: int, saturate: bool) -> tuple[np.ndarray, int]:
    """(The sums on the grid as float64, overflow events) by lp_fixed_sums_f32: integers whose products,
    partial sums and out-of-range sums stay below 2**24 (exact in float32), k < 2**24."""
    a = np.ascontiguousarray(ai, np.float32)
    b = np.ascontiguousarray(bi, np.float32)
    m, k = a.shape
    n = b.shape[1]
    out = np.empty((m, n))
    overflows = np.zeros(m, np.int64)
    status = lib.lp_fixed_sums_f32(ffi.from_buffer("float[]", a), ffi.from_buffer("float[]", b),
                                   ffi.from_buffer("double[]", out, require_writable=True),
                                   ffi.from_buffer("int64_t[]", overflows, require_writable=True), m, k, n, lo, hi,
                                   span, int(saturate), get_num_threads())
    if status != 0:
        raise RuntimeError(f"lp_fixed_sums_f32 refused lo={lo}, hi={hi}, span={span}, k={k} (a bug in lowprec)")
    return out, int(overflows.sum())


def fixed_matmul(A: np.ndarray, B: np.ndarray, acc: FixedFormat, rounding: str) -> tuple[np.ndarray, int] | None:
    """(A @ B under the fixed-point rule as float64, overflow events), or None (see the module doc)."""
    if rounding not in MODES or acc.bits > 53:
        return None
    # float32 operands stay float32 (every value and its power-of-two scaling exact there); others in float64
    sa, sb = _integer_scale(_exact_float(A)), _integer_scale(_exact_float(B))
    if sa is None or sb is None:
        return None
    (ai, fa), (bi, fb) = sa, sb
    shift = fa + fb - acc.frac_bits  # the products' unit is 2**-(fa + fb); the grid's 2**-frac_bits
    lo, hi = int(round(acc.min * 2**acc.frac_bits)), int(round(acc.max * 2**acc.frac_bits))
    if shift < 0:  # products coarser than the grid: in grid units, exact
        ai = _scaled(ai, -shift)
        shift = 0
    b_max = float(np.abs(bi).max(initial=0))
    pmax = float(np.abs(ai).max(initial=0)) * b_max  # the largest product's magnitude
    # every value exact in float64 (as the numpy rule computes it) and in int64 here
    if acc.bits + max(shift, 0) > 52 or pmax >= 2.0**52:
        return None
    bound = float(np.abs(ai).sum(axis=1, dtype=np.float64).max(initial=0)) * b_max
    if shift == 0 and bound <= hi and -bound >= lo:
        # no partial sum leaves the range: the exact dot products, which BLAS computes exactly in any
        # order: float32 where every operand, product and partial sum is an integer of at most 2**24
        # (bound covers them all; a zero operand makes every product zero), else float64 (below 2**52)
        work = np.float32 if bound <= 2.0**24 else np.float64
        exact = np.matmul(ai.astype(work, copy=False), bi.astype(work, copy=False))
        return _scaled(exact.astype(np.float64, copy=False), -acc.frac_bits), 0
    saturate = acc.overflow == "saturate"
    span = hi - lo + 1
    if shift == 0 and max(-lo, hi) + pmax < 2.0**24 and (saturate or pmax <= span) and ai.shape[1] < 2**24:
        s, overflows = _sums_f32(ai, bi, lo, hi, span, saturate)
        return _scaled(s, -acc.frac_bits), overflows
    out = np.empty((A.shape[0], B.shape[1]), np.int64)
    overflows = np.zeros(A.shape[0], np.int64)
    if shift == 0:
        kernels()["sums_units"](ai.astype(np.int64), np.ascontiguousarray(bi, np.int64), out, overflows, lo, hi,
                                saturate)
    else:
        kernels()["sums"](ai.astype(np.int64), np.ascontiguousarray(bi.T.astype(np.int64)), out, overflows, shift, lo,
                          hi, saturate, MODES[rounding])
    return _scaled(out.astype(np.float64), -acc.frac_bits), int(overflows.sum())

