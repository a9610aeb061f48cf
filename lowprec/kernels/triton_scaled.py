"""Triton kernels of the binary, ternary and integer-affine formats (lowprec.array.scaled's rules,
in float64 as there): binary sign (or BinaryConnect's stochastic rounding: +alpha with probability
clip((x / alpha + 1) / 2, 0, 1) against a 32-bit Philox draw per element, the float32 layout of the
C core), ternary thresholds, integer affine as csrc/affine_impl.h (x / scale rounded to odd, then to
an integer by the float kernel's rule in the caller's mode, 64-bit draws in the float64 layout;
(q - zp) * scale rounded once); parameters per tensor or per channel (the channel of element i of a
contiguous tensor: (i // inner) % channels). NaN stays NaN. Loaded by lowprec.kernels.gpu as
triton_float.py is, whose Philox and rounding it reuses."""

import triton
import triton.language as tl

from lowprec.kernels.triton_float_loaded import (_draw32, _draw64, _odd_product, _odd_quotient,  # the float kernel's,
                                                 _round_one)  # in the same mode


@triton.jit
def _channel(idx, inner, channels):
    return (idx // inner) % channels


@triton.jit(do_not_specialize=["key_lo", "key_hi"])
def binary(x_ptr, y_ptr, alpha_ptr, n, inner, channels, key_lo, key_hi, BLOCK: tl.constexpr,
           STOCHASTIC: tl.constexpr):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = idx < n
    x = tl.load(x_ptr + idx, mask=inside, other=0.0).to(tl.float64)
    alpha = tl.load(alpha_ptr + _channel(idx, inner, channels), mask=inside, other=1.0)
    if STOCHASTIC:
        u = _draw32(idx, key_lo, key_hi, False).to(tl.float64) / 4294967296.0
        p = tl.minimum(tl.maximum((x / alpha + 1.0) / 2.0, 0.0), 1.0)
        plus = u < p
    else:
        plus = x >= 0.0
    value = tl.where(plus, alpha, -alpha)
    value = tl.where(x != x, x, value)
    tl.store(y_ptr + idx, value.to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def ternary(x_ptr, y_ptr, w_p_ptr, w_n_ptr, delta_ptr, n, inner, channels, BLOCK: tl.constexpr):
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = idx < n
    x = tl.load(x_ptr + idx, mask=inside, other=0.0).to(tl.float64)
    ch = _channel(idx, inner, channels)
    w_p = tl.load(w_p_ptr + ch, mask=inside, other=0.0)
    w_n = tl.load(w_n_ptr + ch, mask=inside, other=0.0)
    delta = tl.load(delta_ptr + ch, mask=inside, other=0.0)
    value = tl.where(x > delta, w_p, tl.where(x < -delta, -w_n, 0.0))
    value = tl.where(x != x, x, value)
    tl.store(y_ptr + idx, value.to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _to_integer(q, MODE: tl.constexpr):
    """float64 q rounded to an integer in a deterministic MODE, clamped to +-2**62 (as the C core
    clamps), as int64: float arithmetic (|q| + 2**52 - 2**52 is |q| to the nearest even integer below
    2**52; above, |q| is an integer) and 64-bit integer adds, not the 64-bit pattern rule."""
    a = tl.minimum(tl.abs(q), 4611686018427387904.0)
    big = 4503599627370496.0
    near = tl.where(a < big, (a + big) - big, a)
    low = tl.where(near > a, near - 1.0, near)  # floor(|q|)
    inexact = (a > low).to(tl.int64)
    whole = low.to(tl.int64)
    if MODE == 0:  # nearest_even
        mag = near.to(tl.int64)
    elif MODE == 1:  # nearest_away: a tie (exactly .5 above floor: a - low is exact) goes up
        mag = whole + (a - low >= 0.5).to(tl.int64)
    elif MODE == 2:  # toward_zero
        mag = whole
    elif MODE == 3:  # up: away from zero for positive q
        mag = whole + tl.where(q > 0, inexact, 0)
    elif MODE == 4:  # down: away from zero for negative q
        mag = whole + tl.where(q < 0, inexact, 0)
    else:  # odd: truncate, then make the integer odd if anything was dropped
        mag = whole + (inexact & ~whole & 1)
    return tl.where(q < 0, -mag, mag)


@triton.jit(do_not_specialize=["key_lo", "key_hi"])
def affine(x_ptr, y_ptr, scale_ptr, zp_ptr, ip_ptr, n, inner, channels, qmin, qmax, key_lo, key_hi,
           BLOCK: tl.constexpr, MODE: tl.constexpr, DEEP: tl.constexpr):
    """y = clamp(round(x / scale) + zp, qmin, qmax) - zp, times scale (scale float64, zp int64 per
    channel); ip_ptr: the parameter vector of rounding to a 64-bit integer from float64."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = idx < n
    x = tl.load(x_ptr + idx, mask=inside, other=0.0)
    x64 = x.to(tl.float64)
    ch = _channel(idx, inner, channels)
    scale = tl.load(scale_ptr + ch, mask=inside, other=1.0)
    zp = tl.load(zp_ptr + ch, mask=inside, other=0)
    q = _odd_quotient(tl.where(x64 != x64, 0.0, x64), scale)
    if MODE == 6:  # the float kernel's rule on the 64-bit pattern, with the C core's 64-bit draws
        qbits = q.to(tl.uint64, bitcast=True)
        k = _round_one(qbits, _draw64(idx, key_lo, key_hi, False), ip_ptr, 64, 52, 1023, MODE, DEEP).to(tl.float64,
                                                                                                  bitcast=True)
        k = tl.minimum(tl.maximum(k, -4611686018427387904.0), 4611686018427387904.0).to(tl.int64)
    else:
        k = _to_integer(q, MODE)
    qv = tl.minimum(tl.maximum(k + zp, qmin), qmax)
    m = (qv - zp).to(tl.float64)
    if y_ptr.dtype.element_ty == tl.float64:
        value = m * scale
    else:  # round to odd, then the one rounding to float32
        value = _odd_product(m, scale)
    value = value.to(y_ptr.dtype.element_ty)
    tl.store(y_ptr + idx, tl.where(x != x, x, value), mask=inside)
