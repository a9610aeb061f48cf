"""The reference quantizer: pure numpy, slow and plain, the second opinion the tests hold the C core
to, and the documentation of the algorithm.

For each finite nonzero |x|, with (m, emin, q_exp) = formats.layout(fmt):

1. e = floor(log2|x|), raised to emin below the normal range (the quantum stays 2**(emin - m)
   there); for a float without subnormals, everything below 2**emin has quantum 2**emin, so it
   rounds to 0 or the min normal.
2. s = |x| / 2**(e - m) is exact (a power-of-two scaling); split s = floor(s) + frac.
3. The mode decides whether to add 1 to floor(s) (see ``_round_up``); the result is
   (floor(s) + up) * 2**(e - m).
4. Results beyond the largest finite value follow the format's overflow rule; Inf, NaN and -0
   follow its conventions (see FloatFormat / FixedFormat).

Stochastic rounding (gfloat's RoundMode.Stochastic): with k random bits r, D = frac * 2**k rounded
to nearest even, round up iff D + r >= 2**k. k = rbits, or 32 (float32 input) / 64 (float64 input)
when rbits is None. The random bits come from Philox4x32-10 laid out as the C core lays them out
(``element_random``).
"""

from __future__ import annotations

import numpy as np

from ._exact import largest_at_most  # noqa: F401 (also lowprec.reference.largest_at_most)
from .formats import FixedFormat, FloatFormat, Format, as_scalar_format, layout, max_magnitudes
from .kernels.rounding import check_rbits, mode_index

_PHILOX_M = (np.uint64(0xD2511F53), np.uint64(0xCD9E8D57))
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)
_BLOCK = 1024  # elements per block of the C core
_MASK32 = np.uint64(0xFFFFFFFF)


def philox4x32(counters: np.ndarray, seed: int) -> np.ndarray:
    """Philox4x32-10 of 64-bit counters (as (lo, hi, 0, 0)) under a 64-bit key: uint32 (4, n)."""
    ctr = np.asarray(counters, np.uint64)
    c = [ctr & _MASK32, ctr >> np.uint64(32), np.zeros_like(ctr), np.zeros_like(ctr)]
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = _PHILOX_M[0] * c[0]  # 32 x 32 -> 64 bits, exact in uint64
        p1 = _PHILOX_M[1] * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ np.uint64(k0), p1 & _MASK32,
             (p0 >> np.uint64(32)) ^ c[3] ^ np.uint64(k1), p0 & _MASK32]
        k0 = (k0 + _PHILOX_W[0]) & 0xFFFFFFFF
        k1 = (k1 + _PHILOX_W[1]) & 0xFFFFFFFF
    return np.stack(c).astype(np.uint32)


def element_random(n: int, dtype, seed: int, offset: int = 0, rbits: int | None = None) -> np.ndarray:
    """The random draw of each of n elements in the C core's layout (see csrc/lowprec.h):
    uint32 per element for float32 input, uint64 for float64. With rbits <= 8 a draw is one byte,
    held as the draw's top byte: element i of a block takes byte i // 256 of word (i % 256) // 64 of
    counter i % 64 (from the block's counter base, as for wider draws)."""
    i = np.arange(n, dtype=np.int64)
    block, local = np.divmod(i, _BLOCK)
    width = 32 if np.dtype(dtype) == np.float32 else 64
    per_block = _BLOCK // (4 if width == 32 else 2)
    cols = np.arange(n)
    if rbits is not None and rbits <= 8:
        j = local % 256
        words = philox4x32((offset + block * per_block + j % 64).astype(np.uint64), seed)
        byte = (words[j // 64, cols].astype(np.uint64) >> (np.uint64(8) * (local // 256).astype(np.uint64))) & np.uint64(0xFF)
        top = byte << np.uint64(width - 8)
        return top.astype(np.uint32) if width == 32 else top
    ctr = offset + block * per_block + local % per_block
    words = philox4x32(ctr.astype(np.uint64), seed)
    if width == 32:
        return words[local // per_block, cols]
    words = words.astype(np.uint64)
    h = local // per_block
    return words[2 * h, cols] | (words[2 * h + 1, cols] << np.uint64(32))


def _round_up(rounding, frac, odd, neg, k, rand, inexact):
    """Whether to add one unit to floor(s), per mode (frac = s - floor(s), exact; odd: whether the
    code of floor(s) * 2**qe is odd; inexact: frac > 0, also where s underflowed float64)."""
    if rounding == "nearest_even":
        return (frac > 0.5) | ((frac == 0.5) & odd)
    if rounding == "nearest_away":
        return frac >= 0.5
    if rounding == "toward_zero":
        return np.zeros(frac.shape, bool)
    if rounding == "up":
        return inexact & ~neg
    if rounding == "down":
        return inexact & neg
    if rounding == "odd":
        return inexact & ~odd
    # stochastic
    d = np.rint(np.ldexp(frac, k))  # exact scaling, then round half to even
    width = 32 if rand.dtype == np.uint32 else 64
    r = rand.astype(np.uint64) >> np.uint64(width - k)
    if k == 64:
        big = d >= 2.0**64
        dk = np.where(big, 0, d).astype(np.uint64)
        return big | (r > ~dk)
    return (d.astype(np.uint64) + r) >= np.uint64(2**k)


def quantize_reference(x, fmt, rounding: str = "nearest_even", *, rbits: int | None = None,
                       seed: int | None = None, offset: int = 0, random=None) -> np.ndarray:
    """Pure-numpy twin of lowprec.quantize for float32/float64 numpy input (see the module doc).
    Stochastic rounding draws from Philox(seed) as the C core does, or takes the draws given in
    `random` (uint32 per element for float32 input, uint64 for float64; the top k bits are used)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return _quantize_reference(x, fmt, rounding, rbits, seed, offset, random)


def _quantize_reference(x, fmt, rounding, rbits, seed, offset, random) -> np.ndarray:
    fmt: Format = as_scalar_format(fmt)
    mode_index(rounding)
    rbits = check_rbits(rbits)
    x = np.asarray(x)
    dtype = x.dtype
    width = 8 * dtype.itemsize
    v = x.astype(np.float64).ravel()
    m, emin, q_exp = layout(fmt)

    neg = np.signbit(v)
    a = np.abs(v)
    finite_nonzero = np.isfinite(a) & (a > 0)
    am = np.where(finite_nonzero, a, 1.0)
    e = np.maximum(np.frexp(am)[1] - 1, emin)
    qe = np.where(am < 2.0**q_exp, q_exp, e - m) if q_exp == emin else e - m
    s = np.ldexp(am, -qe)
    floor_s = np.floor(s)
    frac = s - floor_s
    rand = None
    k = 0
    if rounding == "stochastic":
        if random is not None:
            rand = np.asarray(random, np.uint32 if width == 32 else np.uint64).ravel()
        elif seed is None:
            raise ValueError("seed (or random) is required for the reference's stochastic rounding")
        else:
            rand = element_random(v.size, dtype, seed, offset, rbits)
        k = width if rbits is None else min(rbits, width)
    inexact = (frac > 0) | (finite_nonzero & (s == 0))  # s == 0: |x| * 2**-qe underflowed float64
    odd = np.fmod(floor_s, 2) == 1
    if isinstance(fmt, FloatFormat) and fmt.man_bits == 0:
        # no mantissa bits: consecutive codes are consecutive binades, the code parity is e's
        odd = np.where(floor_s >= 1, (e - emin + 1) % 2 == 1, odd)
    up = _round_up(rounding, frac, odd, neg, k, rand, inexact)
    r = np.ldexp(floor_s + up, qe)
    r = np.where(finite_nonzero, r, 0.0)

    # overflow, by side (fixed point is asymmetric); the limits are those the dtype can hold
    lim_pos, lim_neg = (float(largest_at_most(v, dtype)) for v in max_magnitudes(fmt, dtype))
    lim = np.where(neg, lim_neg, lim_pos)
    over = r > lim
    policy = fmt.overflow
    if policy == "wrap":
        scale = 2.0**fmt.frac_bits
        kk = np.where(neg, -r, r) * scale
        kmax = fmt.max * scale
        w = np.mod(kk, 2.0**fmt.bits)  # exact
        w = np.where(w > kmax, w - 2.0**fmt.bits, w)
        r = np.where(over, np.abs(w / scale), r)
        neg = np.where(over, w < 0, neg)
    elif policy == "saturate":
        r = np.where(over, lim, r)
    else:
        beyond = np.inf if policy == "inf" else np.nan
        stops = {"toward_zero": np.ones_like(neg), "down": ~neg, "up": neg}.get(rounding, np.zeros_like(neg))
        r = np.where(over, np.where(stops, lim, beyond), r)

    # Inf and NaN inputs
    inf_in = np.isinf(a)
    if policy in ("saturate", "wrap"):
        r = np.where(inf_in, lim, r)
    else:
        r = np.where(inf_in, np.inf if policy == "inf" else np.nan, r)
    nan_in = np.isnan(a)
    if fmt.has_nan:
        r = np.where(nan_in, np.nan, r)
    else:
        r = np.where(nan_in, 0.0, r)
        if not isinstance(fmt, FixedFormat):
            neg = np.where(nan_in, ~neg, neg)  # ml_dtypes: NaN -> the zero of opposite sign

    out = np.where(neg, -r, r)
    if not fmt.has_negative_zero:
        out = np.where(out == 0, 0.0, out)
    return out.astype(dtype).reshape(x.shape)
