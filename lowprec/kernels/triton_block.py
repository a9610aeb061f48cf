"""Triton kernel of the e8m0 block-scaled (OCP MX) quantizer: csrc/block_impl.h on float32 elements.

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

from lowprec.kernels.triton_float_loaded import _draw32, _round_one  # the float kernel, in the same mode


@triton.jit
def _larger(a, b):  # tl.max is a jit function of triton.language, which the interpreter cannot mix in
    return tl.maximum(a, b)


@triton.jit
def _pow2(k):
    """2**k as float32 for k a normal exponent (-126..127)."""
    return ((k + 127).to(tl.uint32) << 23).to(tl.float32, bitcast=True)


@triton.jit(do_not_specialize=["key_lo", "key_hi"])
def quantize_e8m0(x_ptr, y_ptr, p_ptr, total_blocks, nbl, L, inner, B, elem_emax, thr, key_lo, key_hi,
                  NB: tl.constexpr, BP: tl.constexpr, IT: tl.constexpr, MODE: tl.constexpr, DEEP: tl.constexpr):
    """y = x quantized to an e8m0 block format; nbl blocks a line of L positions (B a block),
    total_blocks = lines * nbl; p_ptr: the element format's parameter vector (triton_float's layout).
    The key as in triton_float.quantize_float."""
    jb = tl.program_id(0).to(tl.int64) * NB + tl.arange(0, NB)[:, None, None]  # the block, over all lines
    r = tl.arange(0, BP)[None, :, None]  # the position in the block
    i = tl.program_id(1).to(tl.int64) * IT + tl.arange(0, IT)[None, None, :]  # the inner position
    o = jb // nbl
    lpos = (jb % nbl) * B + r
    inside = (jb < total_blocks) & (r < B) & (lpos < L) & (i < inner)
    idx = (o * L + lpos) * inner + i
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
        rnd = _draw32((o * inner + i) * (nbl * B) + lpos, key_lo, key_hi)
    else:
        rnd = ybits
    rounded = _round_one(ybits, rnd, p_ptr, 32, 23, 127, MODE, DEEP).to(tl.float32, bitcast=True)
    out = rounded * _pow2(tl.where(e < -64, -64, e)) * _pow2(tl.where(e < -64, e + 64, 0))
    out = tl.where(nan_block, 0x7FC00000, out.to(tl.uint32, bitcast=True)).to(tl.float32, bitcast=True)
    tl.store(y_ptr + idx, out, mask=inside)
