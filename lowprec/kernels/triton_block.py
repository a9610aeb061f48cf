"""Triton kernels of the block-scaled quantizers: e8m0 scales (OCP MX, bfp) as csrc/block_impl.h on
float32 elements, and float scales (NVFP4, with its per-tensor scale) as lowprec.array.block's
float_scale_quantize, in float64, on float32 or float64 elements.

Loaded by lowprec.kernels.gpu as triton_float.py is (compiled, or for the interpreter); it reuses
that module's rounding and Philox, loaded beside it in the same mode.

The tensor is seen as (outer, L, inner), blocks of B consecutive positions along L (the blocked
axis) at a fixed (outer, inner); the last block of a line may be shorter (zero padding). A program
takes NB blocks x BP (B rounded up to a power of two) positions x IT inner positions. The scale
exponent of a block is the C core's: from the largest magnitude pattern, by the rule's threshold;
each element is scaled by 2**-e (in two steps when 2**-e is not a normal float32), a nonzero result
below float32's normal range replaced by that normal (the C core's premise), rounded to the element
format by the float kernel's rule, and scaled back. Stochastic draws follow the blocked layout (axis
last, lines padded to whole blocks), as the C core's do.
"""

import triton
import triton.language as tl

from lowprec.kernels.triton_float_loaded import _draw32, _draw64, _odd32, _odd_quotient, _round_one  # the float kernel's


@triton.jit
def _larger(a, b):  # tl.max is a jit function of triton.language, which the interpreter cannot mix in
    return tl.maximum(a, b)


@triton.jit
def _pow2(k):
    """2**k as float32 for k a normal exponent (-126..127)."""
    return ((k + 127).to(tl.uint32) << 23).to(tl.float32, bitcast=True)


@triton.jit
def _block_view(NB: tl.constexpr, BP: tl.constexpr, IT: tl.constexpr, total_blocks, nbl, L, inner, B):
    """(line, position along L, inner position, in range, flat index) of this program's tile."""
    jb = tl.program_id(0).to(tl.int64) * NB + tl.arange(0, NB)[:, None, None]
    r = tl.arange(0, BP)[None, :, None]
    i = tl.program_id(1).to(tl.int64) * IT + tl.arange(0, IT)[None, None, :]
    o = jb // nbl
    lpos = (jb % nbl) * B + r
    inside = (jb < total_blocks) & (r < B) & (lpos < L) & (i < inner)
    return o, lpos, i, inside, (o * L + lpos) * inner + i


@triton.jit(do_not_specialize=["key_lo", "key_hi"])
def quantize_e8m0(x_ptr, y_ptr, p_ptr, total_blocks, nbl, L, inner, B, elem_emax, thr, key_lo, key_hi,
                  NB: tl.constexpr, BP: tl.constexpr, IT: tl.constexpr, MODE: tl.constexpr, DEEP: tl.constexpr,
                  BYTES: tl.constexpr):
    """y = x quantized to an e8m0 block format; nbl blocks a line of L positions (B a block),
    total_blocks = lines * nbl; p_ptr: the element format's parameter vector (triton_float's layout).
    The key as in triton_float.quantize_float."""
    o, lpos, i, inside, idx = _block_view(NB, BP, IT, total_blocks, nbl, L, inner, B)
    x = tl.load(x_ptr + idx, mask=inside, other=0.0)
    bits = x.to(tl.uint32, bitcast=True)
    a = bits & 0x7FFFFFFF
    m = tl.reduce(a, 1, _larger, keep_dims=True)  # the block's largest magnitude pattern (NaN > Inf > all)
    nan_block = m >= 0x7F800000
    e = (m >> 23).to(tl.int32) - 127 - elem_emax + ((m & 0x7FFFFF) >= thr).to(tl.int32)
    e = tl.where((m >> 23) == 0, -127, e)
    e = tl.minimum(tl.maximum(e, -127), 127)
    e = tl.where(nan_block, 0, e)
    y = x * _pow2(tl.where(e > 64, -64, -e)) * _pow2(tl.where(e > 64, 64 - e, 0))
    tiny = tl.where(x < 0, -1.1754943508222875e-38, 1.1754943508222875e-38)
    y = tl.where((tl.abs(y) < 1.1754943508222875e-38) & (x != 0), tiny, y)
    ybits = y.to(tl.uint32, bitcast=True)
    if MODE == 6:  # the draw of layout position p = line * padded length + l, as lp_quantize lays them out
        rnd = _draw32((o * inner + i) * (nbl * B) + lpos, key_lo, key_hi, BYTES)
    else:
        rnd = ybits
    rounded = _round_one(ybits, rnd, p_ptr, 32, 23, 127, MODE, DEEP).to(tl.float32, bitcast=True)
    out = rounded * _pow2(tl.where(e < -64, -64, e)) * _pow2(tl.where(e < -64, e + 64, 0))
    out = tl.where(nan_block, 0x7FC00000, out.to(tl.uint32, bitcast=True)).to(tl.float32, bitcast=True)
    tl.store(y_ptr + idx, out, mask=inside)


@triton.jit
def _abs_bits(x):
    """|x| in float64 as int64 patterns: ordered as the magnitudes, NaN above Inf above all."""
    return x.to(tl.float64).to(tl.int64, bitcast=True) & 0x7FFFFFFFFFFFFFFF


@triton.jit
def finite_amax(x_ptr, amax_ptr, total_blocks, nbl, L, inner, B, NB: tl.constexpr, BP: tl.constexpr,
                IT: tl.constexpr):
    """amax_ptr[0] (int64, from 0) = max(itself, the largest |x| over blocks without NaN or Inf), as a
    float64 pattern: the per-tensor scale's amax."""
    o, lpos, i, inside, idx = _block_view(NB, BP, IT, total_blocks, nbl, L, inner, B)
    a = _abs_bits(tl.load(x_ptr + idx, mask=inside, other=0.0))
    m = tl.reduce(a, 1, _larger, keep_dims=True)
    m = tl.where(m < 0x7FF0000000000000, m, 0)
    tl.atomic_max(amax_ptr, tl.reduce(tl.reduce(tl.reduce(m, 0, _larger), 0, _larger), 0, _larger))


@triton.jit(do_not_specialize=["key_lo", "key_hi"])
def quantize_fscale(x_ptr, y_ptr, ep_ptr, sp_ptr, c_ptr, amax_ptr, total_blocks, nbl, L, inner, B, key_lo, key_hi,
                    NB: tl.constexpr, BP: tl.constexpr, IT: tl.constexpr, MODE: tl.constexpr, EDEEP: tl.constexpr,
                    SDEEP: tl.constexpr, TENSOR_SCALE: tl.constexpr, BYTES: tl.constexpr):
    """y = x quantized to a float-scaled block format: ep_ptr the element format's parameter vector
    in MODE (for float64 when stochastic, float32 otherwise), sp_ptr the saturating scale format's
    (nearest even, float32); EDEEP, SDEEP: their DEEP. c_ptr: the float64 constants (element max,
    scale max * element max, the scale's smallest positive value); the tensor scale g from the
    float64 pattern at amax_ptr (TENSOR_SCALE: float32(amax / (scale max * element max)), 1 where that
    is 0 or not finite). The quotients are rounded to odd in float64, then (but for stochastic
    rounding, whose draws are the float64 layout's) to odd at float32 precision, and rounded there."""
    o, lpos, i, inside, idx = _block_view(NB, BP, IT, total_blocks, nbl, L, inner, B)
    elem_max = tl.load(c_ptr)
    smallest = tl.load(c_ptr + 2)
    x = tl.load(x_ptr + idx, mask=inside, other=0.0)
    x64 = x.to(tl.float64)
    if TENSOR_SCALE:
        t_amax = tl.load(amax_ptr).to(tl.float64, bitcast=True)
        g32 = (t_amax / tl.load(c_ptr + 1)).to(tl.float32)
        g = tl.where((g32 > 0) & (g32 < float("inf")), g32.to(tl.float64), 1.0)
    else:
        g = 1.0
    m = tl.reduce(_abs_bits(x), 1, _larger, keep_dims=True)
    finite = m < 0x7FF0000000000000
    amax = tl.where(finite, m, 0).to(tl.float64, bitcast=True)
    raw = _odd32(_odd_quotient(amax, elem_max * g))
    scale = _round_one(raw, raw, sp_ptr, 32, 23, 127, 0, SDEEP).to(tl.float32, bitcast=True).to(tl.float64)
    scale = tl.where(amax > 0, tl.maximum(scale, smallest), scale)
    usable = finite & (scale > 0)
    sg = tl.where(usable, scale * g, 1.0)
    q = tl.where(usable, _odd_quotient(x64, sg), 0.0)
    if MODE == 6:  # the draw of layout position p = line * padded length + l, 64 bits (float64 quotients)
        qbits = q.to(tl.uint64, bitcast=True)
        rnd = _draw64((o * inner + i) * (nbl * B) + lpos, key_lo, key_hi, BYTES)
        element = _round_one(qbits, rnd, ep_ptr, 64, 52, 1023, MODE, EDEEP).to(tl.float64, bitcast=True)
    else:
        q32 = _odd32(q)
        element = _round_one(q32, q32, ep_ptr, 32, 23, 127, MODE, EDEEP).to(tl.float32, bitcast=True).to(tl.float64)
    value = tl.where(finite, element * sg, float("nan"))
    tl.store(y_ptr + idx, value.to(y_ptr.dtype.element_ty), mask=inside)
