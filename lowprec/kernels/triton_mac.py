"""Triton kernel of the sequential MAC engine: csrc/mac_impl.h (C = A @ B, every product and
accumulation rounded as DESIGN.md section 4 says), for a tile of BM x BN outputs a program, each
output's k steps in order, the tile's outputs side by side.

Arithmetic in the working type FT (float32 or float64, WIDTH): products are exact in it (the caller
checks, as for the C kernel), a sum s + p is rounded to odd in FT from TwoSum's exact error, then
rounded to the accumulator's format by the float kernel's rule: the correct rounding of the exact
sum. Stochastic draws as the C kernel's: rounding event e (0 product, 1 accumulation, 2 chunk total,
3 output) at step t of output o = offset + i * n + j takes word t % 4 of Philox4x32-10(seed, counter
(4 o + e) Q + t // 4), Q = k // 4 + 1 (t = k for the output), its top rbits bits as the parameter
vector says. Loaded by
lowprec.kernels.gpu as triton_float.py is, whose rounding and Philox it reuses.
"""

import triton
import triton.language as tl

from lowprec.kernels.triton_float_loaded import _philox, _round_one, _unbias  # the float kernel's


@triton.jit
def _add_rto(s, p, DOWN: tl.constexpr, WIDTH: tl.constexpr):
    """s + p rounded to odd in s's type; an exact zero sum is -0 under rounding down unless both
    terms are +0 (IEEE 754), as add_rto_ in csrc/mac_impl.h."""
    r = s + p
    if WIDTH == 32:
        ut = tl.uint32
    else:
        ut = tl.uint64
    if DOWN:
        both_plus_zero = (s.to(ut, bitcast=True) | p.to(ut, bitcast=True)) == 0
        r = tl.where((r == 0) & ~both_plus_zero, -0.0, r).to(s.dtype)
    bp = r - s
    e = (s - (r - bp)) + (p - bp)  # TwoSum: s + p == r + e exactly
    rb = r.to(ut, bitcast=True)
    eb = e.to(ut, bitcast=True)
    one = rb * 0 + 1
    exp_mask = ((one << (WIDTH - 1)) - 1) ^ ((one << (23 if WIDTH == 32 else 52)) - 1)
    step = ((eb << 1) != 0) & ((rb & exp_mask) != exp_mask) & ((rb & 1) == 0)
    toward_zero = ((rb ^ eb) >> (WIDTH - 1)) != 0  # e and r differ in sign: the odd one is nearer 0
    return tl.where(step, tl.where(toward_zero, rb - 1, rb + 1), rb).to(s.dtype, bitcast=True)


@triton.jit
def _round_to(x, p_ptr, rnd32, WIDTH: tl.constexpr, MODE: tl.constexpr, HALF: tl.constexpr = False):
    """x rounded by the parameter vector p_ptr (mac_q_): a 32-bit draw on top of the pattern. HALF:
    the format is IEEE binary16 and MODE nearest even (x float32 rounded to odd, or exact): the
    hardware's conversion is that rounding."""
    if HALF:
        return x.to(tl.float16).to(tl.float32)
    if WIDTH == 32:
        bits = x.to(tl.uint32, bitcast=True)
        return _round_one(bits, rnd32, p_ptr, 32, 23, 127, MODE, False).to(tl.float32, bitcast=True)
    bits = x.to(tl.uint64, bitcast=True)
    return _round_one(bits, rnd32.to(tl.uint64) << 32, p_ptr, 64, 52, 1023, MODE, False).to(tl.float64, bitcast=True)


@triton.jit
def _word(base, q, t, k0, k1, zero, KIND: tl.constexpr, MODE: tl.constexpr):
    """The draw of rounding event KIND at step t for outputs whose counters start at base (4 o Q):
    word t % 4 of Philox4x32-10 of counter base + KIND Q + t // 4 under key (k0, k1) for stochastic
    rounding, else `zero` (unused by the deterministic modes)."""
    if MODE != 6:
        return zero
    ctr = base + q * KIND + (t // 4)
    w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), k0, k1)
    w = t % 4
    return tl.where(w == 0, w0, tl.where(w == 1, w1, tl.where(w == 2, w2, w3)))


@triton.jit
def _words4(ctr, k0, k1, zero, MODE: tl.constexpr):
    """The four words of Philox4x32-10 of counters ctr (steps 4 t4 .. 4 t4 + 3 of one kind) for
    stochastic rounding, else `zero` four times (unused by the deterministic modes)."""
    if MODE != 6:
        return zero, zero, zero, zero
    return _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), k0, k1)


@triton.jit(do_not_specialize=["k", "chunk", "key_lo", "key_hi", "off_lo", "off_hi"])
def mac_sequential(a_ptr, b_ptr, c_ptr, init_ptr, mul_ptr, acc_ptr, chunk_ptr, out_ptr, m, k, n, chunk, key_lo,
                   key_hi, off_lo, off_hi, HAS_INIT: tl.constexpr, WIDTH: tl.constexpr, MODE: tl.constexpr, HAS_MUL: tl.constexpr,
                   CHUNKED: tl.constexpr, ACC_NATIVE: tl.constexpr, CHUNK_NATIVE: tl.constexpr,
                   B_BROADCAST: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, MUL_HALF: tl.constexpr,
                   ACC_HALF: tl.constexpr, CHUNK_HALF: tl.constexpr, OUT_HALF: tl.constexpr):
    """c[m x n] = a[m x k] @ b[k x n] (+ init[m x n] where HAS_INIT) (row-major, contiguous;
    B_BROADCAST: b is one row standing for all k), parameter vectors of the mul / acc / chunk_acc / out formats (mul_ptr, chunk_ptr unused
    unless HAS_MUL, CHUNKED); ACC_NATIVE / CHUNK_NATIVE: that accumulator is FT's own format under
    nearest even (FT's sum is the rounded one); *_HALF: that format is IEEE binary16 under nearest
    even in the float32 working type (a hardware conversion rounds to it). Key and output offset as
    32-bit halves in int32 range (triton_float.quantize_float)."""
    i = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)[:, None]
    j = tl.program_id(1).to(tl.int64) * BN + tl.arange(0, BN)[None, :]
    rows, cols = i < m, j < n
    if WIDTH == 32:
        ft = tl.float32
    else:
        ft = tl.float64
    s = (i * 0 + j * 0).to(ft)  # not tl.zeros: a jit function of triton.language, which the interpreter
    tot = s  # cannot mix in (see triton_float.py)
    if HAS_INIT:  # D = A @ B + C: the sum (the chunk total when chunking) starts from C
        start = tl.load(init_ptr + i * n + j, mask=rows & cols, other=0.0)
        if CHUNKED:
            tot = start
        else:
            s = start
    k0, k1 = _unbias(key_lo), _unbias(key_hi)
    offset = (_unbias(off_hi).to(tl.uint64) << 32) | _unbias(off_lo).to(tl.uint64)
    q = (k // 4).to(tl.uint64) + 1
    first = (offset + (i * n + j).to(tl.uint64)) * 4 * q  # each output's first counter
    zero32 = (i * 0 + j * 0).to(tl.uint32)  # the draw of deterministic modes (unused)
    for t4 in range(0, k, 4):
        # the product and accumulation draws of four steps: one Philox counter per output and kind
        a0, a1, a2, a3 = _words4(first + q + t4 // 4, k0, k1, zero32, MODE)
        m0, m1, m2, m3 = a0, a1, a2, a3
        if HAS_MUL:
            m0, m1, m2, m3 = _words4(first + t4 // 4, k0, k1, zero32, MODE)
        for u in tl.static_range(4):
            t = t4 + u
            if u == 0:
                d0, d1 = m0, a0
            elif u == 1:
                d0, d1 = m1, a1
            elif u == 2:
                d0, d1 = m2, a2
            else:
                d0, d1 = m3, a3
            if t < k:
                av = tl.load(a_ptr + i * k + t, mask=rows, other=0.0)
                if B_BROADCAST:
                    bv = tl.load(b_ptr + j, mask=cols, other=0.0)
                else:
                    bv = tl.load(b_ptr + t * n + j, mask=cols, other=0.0)
                p = av * bv
                if HAS_MUL:
                    p = _round_to(p, mul_ptr, d0, WIDTH, MODE, MUL_HALF)
                if ACC_NATIVE:
                    s = s + p
                else:
                    s = _round_to(_add_rto(s, p, MODE == 4, WIDTH), acc_ptr, d1, WIDTH, MODE, ACC_HALF)
                if CHUNKED:
                    if ((t + 1) % chunk == 0) | (t + 1 == k):
                        if CHUNK_NATIVE:
                            tot = tot + s
                        else:
                            tot = _round_to(_add_rto(tot, s, MODE == 4, WIDTH), chunk_ptr,
                                            _word(first, q, t, k0, k1, zero32, 2, MODE), WIDTH, MODE, CHUNK_HALF)
                        s = (i * 0 + j * 0).to(ft)
    if CHUNKED:
        v = tot
    else:
        v = s
    tl.store(c_ptr + i * n + j, _round_to(v, out_ptr, _word(first, q, k, k0, k1, zero32, 3, MODE), WIDTH, MODE, OUT_HALF),
             mask=rows & cols)


@triton.jit
def _exponent(x, emin):
    """floor(log2 |x|) of float32 x, at least emin; NONE (-2**24) for zero (lp_fused_exponent)."""
    bits = x.to(tl.uint32, bitcast=True) & 0x7FFFFFFF
    e = (bits >> 23).to(tl.int32) - 127
    # a subnormal: -149 + the position of its leading bit, which the exact int-to-float conversion of
    # its pattern puts in the exponent field
    lead = (bits.to(tl.int32).to(tl.float32).to(tl.uint32, bitcast=True) >> 23).to(tl.int32) - 127 - 149
    e = tl.where((bits >> 23) == 0, lead, e)
    e = tl.maximum(e, emin)
    return tl.where(bits == 0, -16777216, e)


@triton.jit
def _pow2_64(k):
    """2**k as float64 for -1022 <= k <= 1023."""
    return ((k + 1023).to(tl.int64) << 52).to(tl.float64, bitcast=True)


@triton.jit
def _trunc(x):
    """x (float64, |x| < 2**62) truncated toward zero: |x| + 2**52 - 2**52 rounds to an integer."""
    a = tl.abs(x)
    big = 4503599627370496.0
    near = tl.where(a < big, (a + big) - big, a)
    low = tl.where(near > a, near - 1.0, near)
    return tl.where(x < 0, -low, low)


@triton.jit
def mac_fused(a_ptr, b_ptr, c_ptr, d_ptr, acc_ptr, chunk_ptr, m, k, n, group, kept, a_emin, b_emin, acc_emax,
              chunk, ref_min, MODE: tl.constexpr, HAS_C: tl.constexpr, CHUNKED: tl.constexpr, BM: tl.constexpr,
              BN: tl.constexpr):
    """d = a @ b (+ c) as a matrix unit computes it (csrc/fused_impl.h): float32 a (m x k), b (k x n),
    c (m x n, the initial accumulator); d float64. Every `group` products and the accumulator are
    truncated to multiples of 2**(ref - kept) (ref: the largest exponent among the products' exponent
    sums and the accumulator's, at least ref_min) and their exact sum rounded into the accumulator by acc_ptr's
    parameters in MODE; beyond 2**(acc_emax + 1): Inf; a zero result +0. CHUNKED: every `chunk`
    products (a multiple of group) the unit's sum is added in float64 to a total (from c) and rounded
    to nearest even by chunk_ptr's parameters, the unit restarting from 0."""
    i = tl.program_id(0).to(tl.int64) * BM + tl.arange(0, BM)[:, None]
    j = tl.program_id(1).to(tl.int64) * BN + tl.arange(0, BN)[None, :]
    rows, cols = i < m, j < n
    zero = (i * 0 + j * 0).to(tl.float64)
    if HAS_C:
        start = tl.load(c_ptr + i * n + j, mask=rows & cols, other=0.0).to(tl.float64)
    else:
        start = zero
    if CHUNKED:
        acc = zero
        total = start
    else:
        acc = start
        total = zero
    overflow = _pow2_64(acc_emax + 1)
    for g0 in range(0, k, group):
        abits = acc.to(tl.int64, bitcast=True) & 0x7FFFFFFFFFFFFFFF
        ref = tl.maximum(tl.where(abits != 0, (abits >> 52).to(tl.int32) - 1023, -33554432), ref_min)
        for kk in range(g0, tl.minimum(g0 + group, k)):
            ea = _exponent(tl.load(a_ptr + i * k + kk, mask=rows, other=0.0), a_emin)
            eb = _exponent(tl.load(b_ptr + kk * n + j, mask=cols, other=0.0), b_emin)
            ref = tl.maximum(ref, ea + eb)
        shift = tl.where(ref > -8388608, kept - ref, 0)
        scale = _pow2_64(shift)
        total_units = _trunc(acc * scale)
        for kk in range(g0, tl.minimum(g0 + group, k)):
            x = tl.load(a_ptr + i * k + kk, mask=rows, other=0.0).to(tl.float64)
            y = tl.load(b_ptr + kk * n + j, mask=cols, other=0.0).to(tl.float64)
            total_units += _trunc(x * y * scale)
        exact = total_units * _pow2_64(-shift)
        r = _round_one(exact.to(tl.uint64, bitcast=True), exact.to(tl.uint64, bitcast=True), acc_ptr, 64, 52, 1023,
                       MODE, False).to(tl.float64, bitcast=True)
        r = tl.where(exact >= overflow, float("inf"), tl.where(exact <= -overflow, float("-inf"), r))
        acc = r + 0.0  # a zero result is +0
        if CHUNKED:
            if ((g0 + group) % chunk == 0) | (g0 + group >= k):
                s = total + acc
                total = _round_one(s.to(tl.uint64, bitcast=True), s.to(tl.uint64, bitcast=True), chunk_ptr, 64, 52,
                                   1023, 0, False).to(tl.float64, bitcast=True)
                acc = zero
    if CHUNKED:
        result = total
    else:
        result = acc
    tl.store(d_ptr + i * n + j, result, mask=rows & cols)
