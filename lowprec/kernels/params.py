"""Translate a format into the parameter block of the C quantizer, for one input dtype and mode.

The C kernel knows nothing of formats: it rounds a binary32/binary64 pattern at a bit position that
depends on the exponent, clamps magnitudes to limits and writes given patterns for overflow, Inf and
NaN. This module derives those numbers from a format (see csrc/quantize_impl.h for their use).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .._exact import largest_at_most
from ..formats import FloatFormat, Format, layout, max_magnitudes
from .native import ffi

# per input dtype: (mantissa bits, exponent bias, unsigned view, exponent of the smallest subnormal)
_DTYPES = {
    np.dtype(np.float32): (23, 127, np.uint32, -149),
    np.dtype(np.float64): (52, 1023, np.uint64, -1074),
}


def _pattern(value: float, dtype: np.dtype) -> int:
    """Bit pattern of the largest dtype value <= value (value >= 0)."""
    return int(np.array(largest_at_most(value, dtype), dtype).view(_DTYPES[dtype][2]))


@lru_cache(maxsize=512)
def qparams(fmt: Format, dtype: np.dtype, rounding: str, rbits: int | None):
    """The lp_qparams block (a cffi struct) for quantizing `dtype` input to `fmt` with `rounding`."""
    mant, bias, utype, sub_exp_min = _DTYPES[dtype]
    width = 8 * dtype.itemsize
    sign = 1 << (width - 1)
    inf = ((1 << (width - mant - 1)) - 1) << mant
    qnan = inf | (1 << (mant - 1))
    m, emin, q_exp = layout(fmt)
    if q_exp > (bias if dtype == np.float64 else 127):
        raise ValueError(f"{fmt} has no nonzero value representable in {dtype}; use float64 input")

    p = ffi.new("lp_qparams *")
    p.one = 1
    p.drop0 = mant - m
    p.sub_exp = emin + bias
    p.q_exp = q_exp
    if q_exp > sub_exp_min:  # some inputs lie below the smallest nonzero result
        p.tiny = p.q = _pattern(math.ldexp(1.0, q_exp), dtype)
        p.half_q = _pattern(math.ldexp(1.0, q_exp - 1), dtype)

    max_pos, max_neg = max_magnitudes(fmt, dtype)
    lim_pos, lim_neg = _pattern(max_pos, dtype), _pattern(max_neg, dtype)
    if fmt.overflow == "wrap":
        # the kernel leaves finite values unbounded; lowprec.quantize wraps them afterwards
        p.lim_pos = p.lim_neg = p.ovf_pos = p.ovf_neg = inf - 1
        p.inf_pos_full, p.inf_neg_full = lim_pos, (lim_neg | sign) if lim_neg else 0
    else:
        p.lim_pos, p.lim_neg = lim_pos, lim_neg
        beyond = {"saturate": None, "inf": inf, "nan": qnan}[fmt.overflow]
        if beyond is None:
            p.ovf_pos, p.ovf_neg = lim_pos, lim_neg
            p.inf_pos_full, p.inf_neg_full = lim_pos, (lim_neg | sign) if lim_neg else 0
        else:
            # IEEE 754 / gfloat: directed roundings toward zero stop at +-max for finite inputs
            toward_zero_pos = rounding in ("toward_zero", "down")
            toward_zero_neg = rounding in ("toward_zero", "up")
            p.ovf_pos = lim_pos if toward_zero_pos else beyond
            p.ovf_neg = lim_neg if toward_zero_neg else beyond
            p.inf_pos_full, p.inf_neg_full = beyond, beyond | sign

    if fmt.has_nan:
        p.nan_pos_full, p.nan_neg_full = qnan, qnan | sign
    elif isinstance(fmt, FloatFormat):  # ml_dtypes: NaN becomes the zero of opposite sign
        p.nan_pos_full, p.nan_neg_full = sign, 0
    else:
        p.nan_pos_full = p.nan_neg_full = 0
    p.keep_neg_zero = int(fmt.has_negative_zero)
    if isinstance(fmt, FloatFormat) and fmt.man_bits == 0:
        p.par_mask = 1 << mant
        p.par_xor = p.par_mask if (1 - emin - bias) % 2 else 0
    p.rbits = width if rbits is None else min(rbits, width)
    return p
