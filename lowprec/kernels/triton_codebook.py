"""Triton kernel of the codebook (LUT, log) quantizer: csrc/lut_impl.h's rule, x takes the index
#{j : t[j] <= x} of the sorted thresholds t of its row (lowprec.array.codebook), found by a
branch-free binary search, and the value table[index]; NaN stays NaN. Stochastic rounding (the
thresholds are then the "down" ones) moves up to the next entry with probability (x - lo) / (hi - lo)
in float64 against a 32-bit draw, the layout of lowprec.quantize over float32 input laid out channel
first, as the host's. Rows per channel: the channel of element i of a contiguous tensor is
(i // inner) % channels. Loaded by lowprec.kernels.gpu as triton_float.py is, whose Philox it reuses.
"""

import triton
import triton.language as tl

from lowprec.kernels.triton_float_loaded import _draw32  # the float kernel's, in the same mode


@triton.jit(do_not_specialize=["key_lo", "key_hi"])
def lut(x_ptr, y_ptr, thr_ptr, table_ptr, book_ptr, n, inner, channels, entries, key_lo, key_hi,
        BLOCK: tl.constexpr, LOG: tl.constexpr, STOCHASTIC: tl.constexpr):
    """y = the codebook value of x; thr_ptr: channels x (entries - 1) thresholds and table_ptr
    channels x entries values, both of x's dtype; book_ptr: the float64 codebook (stochastic). LOG:
    the bit length of entries - 1 (the search's first step is 2**(LOG - 1))."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = idx < n
    x = tl.load(x_ptr + idx, mask=inside, other=0.0)
    ch = (idx // inner) % channels
    thr = thr_ptr + ch * (entries - 1)
    k = idx * 0  # the count of thresholds <= x, built from the largest power of two down
    for s in tl.static_range(LOG):
        probe = k + (1 << (LOG - 1 - s))
        ok = (probe <= entries - 1) & inside
        t = tl.load(thr + probe - 1, mask=ok, other=0.0)
        k = tl.where(ok & (t <= x), probe, k)
    row = ch * entries
    if STOCHASTIC:
        top = entries - 1
        lo = tl.load(book_ptr + row + k, mask=inside, other=0.0)
        hi = tl.load(book_ptr + row + tl.minimum(k + 1, top), mask=inside, other=1.0)
        x64 = x.to(tl.float64)
        p = tl.where(k < top, (x64 - lo) / tl.where(k < top, hi - lo, 1.0), 0.0)
        rest = n // channels  # the element's place with its channel's row first
        place = ch * rest + (idx // (inner * channels)) * inner + idx % inner
        r = _draw32(place, key_lo, key_hi, False).to(tl.float64)
        k = k + ((r < p * 4294967296.0) & (k < top) & (x64 > lo)).to(tl.int64)
    value = tl.load(table_ptr + row + k, mask=inside, other=0.0)
    tl.store(y_ptr + idx, tl.where(x != x, x, value), mask=inside)
