"""Triton kernels of the binary and ternary formats (lowprec.array.scaled's rules, in float64 as
there): binary sign (or BinaryConnect's stochastic rounding: +alpha with probability
clip((x / alpha + 1) / 2, 0, 1) against a 32-bit Philox draw per element, the float32 layout of the
C core), ternary thresholds; parameters per tensor or per channel (the channel of element i of a
contiguous tensor: (i // inner) % channels). NaN stays NaN. Loaded by lowprec.kernels.gpu as
triton_float.py is, whose Philox it reuses."""

import triton
import triton.language as tl

from lowprec.kernels.triton_float_loaded import _draw32  # the float kernel's, in the same mode


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
        u = _draw32(idx, key_lo, key_hi).to(tl.float64) / 4294967296.0
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
