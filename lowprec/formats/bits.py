"""Bit layouts: codes <-> values of float and fixed-point formats, from their parameters as plain
numbers (this module knows no format class).

Floats are sign | exponent field | mantissa field, as IEEE 754, the OCP specifications and ml_dtypes
lay them out (NaN: sign | all-ones exponent | quiet bit for "ieee"; sign | all ones for "fn";
1000..0 for "fnuz" and "p3109", whose +-Inf are 0111..1 and 1111..1). Fixed point is the two's
complement (or unsigned) integer k of the value k * 2**-frac_bits.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def fixed_values(codes: np.ndarray, bits: int, frac_bits: int, signed: bool) -> np.ndarray:
    """float64 values of uint64 fixed-point codes."""
    k = codes.astype(np.float64)
    if signed:
        k = np.where(codes >= np.uint64(2 ** (bits - 1)), k - 2.0**bits, k)
    return np.ldexp(k, -frac_bits)


def float_values(codes: np.ndarray, exp_bits: int, man_bits: int, bias: int, emin: int, subnormals: bool,
                 specials: str) -> np.ndarray:
    """float64 values of uint64 float codes (exact for every format of at most 53 significant bits)."""
    e, m = exp_bits, man_bits
    bits = 1 + e + m
    sign = (codes >> np.uint64(e + m)) & np.uint64(1)
    expo = ((codes >> np.uint64(m)) & np.uint64(2**e - 1)).astype(np.int64)
    man = (codes & np.uint64(2**m - 1)).astype(np.float64)
    with np.errstate(over="ignore"):  # the all-ones exponent of fp64-wide formats; replaced below
        normal = np.ldexp(1.0 + np.ldexp(man, -m), (expo - bias).astype(np.int32))
    sub = np.ldexp(man, emin - m) if subnormals else np.zeros_like(man)
    mag = np.where(expo == 0, sub, normal)
    top = expo == 2**e - 1
    if specials == "ieee":
        mag = np.where(top, np.where(man == 0, np.inf, np.nan), mag)
    elif specials == "fn":
        mag = np.where(top & (man == 2**m - 1), np.nan, mag)
    values = np.where(sign == 1, -mag, mag)
    if specials in ("fnuz", "p3109"):
        values = np.where(codes == np.uint64(2 ** (bits - 1)), np.nan, values)
    if specials == "p3109":
        values = np.where((codes & np.uint64(2 ** (bits - 1) - 1)) == np.uint64(2 ** (bits - 1) - 1),
                          np.where(sign == 1, -np.inf, np.inf), values)
    return values


def fixed_codes(v: np.ndarray, bits: int, frac_bits: int, signed: bool, dtype) -> np.ndarray:
    """Codes of float64 values that are already values of the fixed-point format (NaN: code 0)."""
    k = np.ldexp(np.nan_to_num(v), frac_bits)
    if bits == 64:
        return k.astype(np.int64).view(np.uint64) if signed else k.astype(np.uint64)
    return np.mod(k.astype(np.int64), 2**bits).astype(dtype)


def float_codes(v: np.ndarray, exp_bits: int, man_bits: int, bias: int, emin: int, specials: str,
                dtype) -> np.ndarray:
    """Codes of float64 values that are already values of the float format (or NaN/Inf where it has
    them)."""
    e, m = exp_bits, man_bits
    bits = 1 + e + m
    neg = np.signbit(v)
    a = np.abs(v)
    finite = np.isfinite(a)
    safe = np.where(finite & (a > 0), a, 1.0)
    ex = np.frexp(safe)[1].astype(np.int64) - 1
    is_normal = finite & (a >= np.ldexp(1.0, emin))
    expo = np.where(is_normal, ex + bias, 0)
    man_normal = np.ldexp(safe, (m - ex).astype(np.int32)) - 2.0**m
    man_sub = np.ldexp(np.where(finite, a, 0.0), m - emin)
    man = np.where(is_normal, man_normal, man_sub)
    man = np.where(finite, man, 0.0).astype(np.uint64)
    codes = (expo.astype(np.uint64) << np.uint64(m)) | man
    top = np.uint64(2**e - 1) << np.uint64(m)
    if specials == "ieee":
        codes = np.where(np.isinf(a), top, codes)
        codes = np.where(np.isnan(a), top | np.uint64(1 << (m - 1)), codes)
    elif specials == "fn":
        codes = np.where(np.isnan(a), top | np.uint64(2**m - 1), codes)
    if specials == "p3109":
        codes = np.where(np.isinf(a), np.uint64(2 ** (bits - 1) - 1), codes)
    codes = codes | (neg.astype(np.uint64) << np.uint64(e + m))
    if specials in ("fnuz", "p3109"):
        codes = np.where(np.isnan(a), np.uint64(2 ** (bits - 1)), codes)
    return codes.astype(dtype)


_TABLE_MAX_MAN = 10  # float32 keys of 1 + 8 + m bits: 2**19 codes at most (fp16)


@lru_cache(maxsize=64)
def _float32_key_table(exp_bits: int, man_bits: int, bias: int, emin: int, specials: str, dtype) -> np.ndarray:
    """float_codes of every float32 whose low 23 - man_bits mantissa bits are zero, indexed by its
    other bits (sign, exponent, top man_bits of the mantissa)."""
    keys = np.arange(1 << (9 + man_bits), dtype=np.uint32)
    with np.errstate(all="ignore"):  # signalling NaNs; keys of no value of the format (never read)
        values = (keys << np.uint32(23 - man_bits)).view(np.float32).astype(np.float64)
        return float_codes(values, exp_bits, man_bits, bias, emin, specials, dtype)


def float_codes_fast(v: np.ndarray, exp_bits: int, man_bits: int, bias: int, emin: int, specials: str,
                     dtype) -> np.ndarray | None:
    """float_codes(v) for float32 or float64 values of the format by a table over their float32 bits,
    or None where that does not apply: every value of a format with 1 <= man_bits <= 10 and its
    exponents in float32's normal range is a float32 whose low 23 - man_bits mantissa bits are zero
    (a subnormal of the format is a float32 of at most man_bits significant bits, or for emin = -126
    a float32 subnormal on that grid). encode of fp8 with it: 17 -> 3.1-3.9 ns an element, rounding
    included."""
    emax = 2**exp_bits - 1 - bias - (specials == "ieee")  # the largest finite binade
    if np.ndim(v) == 0 or not (1 <= man_bits <= _TABLE_MAX_MAN and emin >= -126 and emax <= 127):
        return None
    v32 = v.astype(np.float32, copy=False)  # exact: values of the format
    table = _float32_key_table(exp_bits, man_bits, bias, emin, specials, np.dtype(dtype))
    codes = table[v32.view(np.uint32) >> np.uint32(23 - man_bits)]
    nan = np.isnan(v32)
    if nan.any():  # a NaN whose payload misses the top mantissa bits reads as Inf: the rule's NaN code
        codes[nan] = float_codes(np.where(np.signbit(v32[nan]), -np.nan, np.nan), exp_bits, man_bits, bias, emin,
                                 specials, dtype)
    return codes
