"""Triton kernel of the float and fixed-point quantizer: round_one_ of csrc/quantize_impl.h on the
bit patterns of float32 (float16/bfloat16 are widened in registers) or float64 elements.

Loaded by lowprec.kernels.gpu, once compiled for the GPU and once for Triton's interpreter (CPU
tensors): the mode is fixed when the decorators run, so this module uses no jit function of
triton.language (its Philox is written out below) and must not be imported directly.

One program rounds one work unit (1024 elements), laid out as the C core lays out its stochastic
draws (lowprec.kernels.philox): ROWS x COLS elements, column j drawing from counter
offset + unit * COLS + j, row r taking word r (float32) or words 2r, 2r + 1 (float64). So a seed gives
the same bits here as on the CPU. Every mode computes the full rule (the C core's fast passes and
fix-up are a CPU economy); specials are patched at the end as there.
"""

import triton
import triton.language as tl

# The parameter vector (int64; see params_vector in lowprec.kernels.gpu), one index per lp_qparams field.
P_DROP0 = tl.constexpr(0)
P_SUB_EXP = tl.constexpr(1)
P_Q_EXP = tl.constexpr(2)
P_TINY = tl.constexpr(3)
P_Q = tl.constexpr(4)
P_HALF_Q = tl.constexpr(5)
P_LIM_POS = tl.constexpr(6)
P_LIM_NEG = tl.constexpr(7)
P_OVF_POS = tl.constexpr(8)
P_OVF_NEG = tl.constexpr(9)
P_INF_POS = tl.constexpr(10)
P_INF_NEG = tl.constexpr(11)
P_NAN_POS = tl.constexpr(12)
P_NAN_NEG = tl.constexpr(13)
P_KEEP_NEG_ZERO = tl.constexpr(14)
P_PAR_MASK = tl.constexpr(15)
P_PAR_XOR = tl.constexpr(16)
P_RBITS = tl.constexpr(17)


@triton.jit
def _pattern(p_ptr, i, like):
    """Parameter i as a pattern of like's type (int64 storage: the low bits)."""
    return tl.load(p_ptr + i).to(tl.uint64, bitcast=True).to(like.dtype)


@triton.jit
def _count(p_ptr, i):
    return tl.load(p_ptr + i).to(tl.int32)


@triton.jit
def _philox(c0, c1, k0, k1):
    """Philox4x32-10 (csrc/philox.h) of counters (c0, c1, 0, 0) under key (k0, k1): four uint32 words."""
    c2 = c0 * 0
    c3 = c0 * 0
    for _ in tl.static_range(10):
        n0 = tl.umulhi(c2, 0xCD9E8D57) ^ c1 ^ k0
        n2 = tl.umulhi(c0, 0xD2511F53) ^ c3 ^ k1
        c1 = c2 * 0xCD9E8D57
        c3 = c0 * 0xD2511F53
        c0 = n0
        c2 = n2
        k0 = k0 + 0x9E3779B9
        k1 = k1 + 0xBB67AE85
    return c0, c1, c2, c3


@triton.jit
def _unbias(h):
    """A 32-bit half passed in int32 range (h - 2**31, see quantize_float's doc) as its uint32."""
    return h.to(tl.uint32, bitcast=True) ^ 0x80000000


@triton.jit
def _byte(w0, w1, w2, w3, r):
    """Byte r // 4 of word r % 4 (r in 0..15): a byte-layout draw (lowprec.kernels.philox)."""
    w = r % 4
    word = tl.where(w == 0, w0, tl.where(w == 1, w1, tl.where(w == 2, w2, w3)))
    return (word >> (8 * (r // 4)).to(tl.uint32)) & 0xFF


@triton.jit
def _byte_draw(p, key_lo, key_hi, UNIT_CTRS: tl.constexpr):
    """The byte (rbits <= 8) of element p of an array whose work units start UNIT_CTRS counters apart:
    byte k // 256 of word (k % 256) // 64 of counter k % 64, k = p % 1024, counters from 0."""
    k = p % 1024
    ctr = ((p // 1024) * UNIT_CTRS + k % 64).to(tl.uint64)
    w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), _unbias(key_lo), _unbias(key_hi))
    return _byte(w0, w1, w2, w3, (k // 256) * 4 + (k % 256) // 64)


@triton.jit
def _draw32(p, key_lo, key_hi, BYTES: tl.constexpr):
    """The 32-bit draw of element p of an array in the C core's float32 layout (lowprec.kernels.philox:
    counter (p // 1024) * 256 + p % 256, word (p % 1024) // 256), counters from 0; BYTES (rbits <= 8):
    the byte layout's byte as the top byte."""
    if BYTES:
        return _byte_draw(p, key_lo, key_hi, 256) << 24
    k = p % 1024
    ctr = ((p // 1024) * 256 + k % 256).to(tl.uint64)
    w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), _unbias(key_lo), _unbias(key_hi))
    word = k // 256
    return tl.where(word == 0, w0, tl.where(word == 1, w1, tl.where(word == 2, w2, w3)))


@triton.jit
def _draw64(p, key_lo, key_hi, BYTES: tl.constexpr):
    """The 64-bit draw of element p of an array in the C core's float64 layout (counter
    (p // 1024) * 512 + p % 512, words 2h (low half) and 2h + 1 with h = (p % 1024) // 512); BYTES as
    _draw32's."""
    if BYTES:
        return _byte_draw(p, key_lo, key_hi, 512).to(tl.uint64) << 56
    k = p % 1024
    ctr = ((p // 1024) * 512 + k % 512).to(tl.uint64)
    w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), _unbias(key_lo), _unbias(key_hi))
    lo = tl.where(k < 512, w0, w2).to(tl.uint64)
    hi = tl.where(k < 512, w1, w3).to(tl.uint64)
    return lo | (hi << 32)


@triton.jit
def _odd_quotient(a, b):
    """a / b (float64, b > 0) rounded to odd: the nearest quotient moved to its odd neighbour toward
    the exact one when inexact (the residual exact from an fma), an underflow to 0 the smallest
    subnormal of the exact quotient's sign; as lowprec._exact.divide_round_odd."""
    q = a / b
    r = tl.fma(-q, b, a)
    bits = q.to(tl.int64, bitcast=True)
    fix = (r != 0) & ((bits & 1) == 0) & (tl.abs(q) < float("inf"))  # a zero q too: it underflowed
    step = tl.where((r > 0) == (bits >= 0), 1, -1)  # the sign bit: a zero's is the exact value's
    return tl.where(fix, bits + step, bits).to(tl.float64, bitcast=True)


@triton.jit
def _odd_product(a, b):
    """a * b (float64) rounded to odd, as lowprec._exact.multiply_round_odd (the error from an fma)."""
    p = a * b
    r = tl.fma(a, b, -p)
    bits = p.to(tl.int64, bitcast=True)
    fix = (r != 0) & ((bits & 1) == 0) & (tl.abs(p) < float("inf"))  # a zero p too: it underflowed
    step = tl.where((r > 0) == (bits >= 0), 1, -1)  # the sign bit: a zero's is the exact value's
    return tl.where(fix, bits + step, bits).to(tl.float64, bitcast=True)


@triton.jit
def _odd32(q):
    """float64 q rounded to odd at float32 precision, as a float32 pattern (uint32): rounding it to a
    format of at most 22 significant bits is rounding q (Boldo and Melquiond). All in 32-bit
    operations but the comparisons, which is what makes it cheaper than rounding q's 64-bit pattern."""
    near = q.to(tl.float32)
    bits = near.to(tl.uint32, bitcast=True)
    bits = tl.where(tl.abs(near.to(tl.float64)) > tl.abs(q), bits - 1, bits)  # the truncation
    return tl.where(bits.to(tl.float32, bitcast=True).to(tl.float64) != q, bits | 1, bits)


@triton.jit
def _rtne_shift(v, t, WIDTH: tl.constexpr):
    """Round-to-nearest-even of v * 2**t (t clamped as in C) as an integer of v's type."""
    one = v * 0 + 1
    tl_ = tl.minimum(tl.maximum(t, 0), WIDTH - 1).to(v.dtype)
    tr = tl.where(t > -1, 1, tl.minimum(-t, WIDTH - 1)).to(v.dtype)
    up = v << tl_
    q = v >> tr
    round_bit = (v >> (tr - 1)) & 1
    sticky = ((v & ((one << (tr - 1)) - 1)) != 0).to(v.dtype)
    down = q + (round_bit & (sticky | (q & 1)))
    return tl.where(t >= 0, up, down)


@triton.jit
def _round_one(bits, rnd, p_ptr, WIDTH: tl.constexpr, MANT: tl.constexpr, BIAS: tl.constexpr,
               MODE: tl.constexpr, DEEP: tl.constexpr):
    """round_one_ of csrc/quantize_impl.h (fast = 0): the rounded pattern of each input pattern."""
    one = bits * 0 + 1
    sign_bit = one << (WIDTH - 1)
    abs_mask = sign_bit - 1
    inf_bits = abs_mask ^ ((one << MANT) - 1)
    sign = bits & sign_bit
    a = bits & abs_mask
    e = (a >> MANT).to(tl.int32)
    ec = tl.maximum(e, 1)
    ex = ec
    if DEEP:  # the format reaches below the input's normal range: a subnormal input's own binade
        if WIDTH == 32:
            lead = a.to(tl.int32).to(tl.float32).to(tl.uint32, bitcast=True)
        else:
            lead = a.to(tl.int64).to(tl.float64).to(tl.uint64, bitcast=True)
        ex = tl.where(e == 0, (lead >> MANT).to(tl.int32) - BIAS - MANT + 1, ec)
    below = _count(p_ptr, P_SUB_EXP) - ex
    d = _count(p_ptr, P_DROP0) + ex - ec + tl.maximum(below, 0)
    d = tl.minimum(tl.maximum(d, 0), MANT + 1)
    du = d.to(bits.dtype)
    unit = one << du
    mask = unit - 1
    rem = a & mask
    trunc = a & ~mask
    half = unit >> 1
    sig = tl.where(e != 0, (a & ((one << MANT) - 1)) | (one << MANT), a)
    par_mask = _pattern(p_ptr, P_PAR_MASK, bits)
    count_odd = (((sig & ~par_mask) | (a & par_mask)) ^ _pattern(p_ptr, P_PAR_XOR, bits)) & unit
    neg = sign != 0
    dropped = tl.where(rem != 0, unit, 0)
    is_tiny = a < _pattern(p_ptr, P_TINY, bits)
    half_q = _pattern(p_ptr, P_HALF_Q, bits)
    nonzero = (a != 0).to(bits.dtype)
    if MODE == 0:  # nearest_even
        lsb = ((count_odd >> du) | (unit & 1)) & 1  # d == 0: 1, which makes the sum exact
        r = (a + (half - 1) + lsb) & ~mask
        inc_tiny = (a > half_q).to(bits.dtype)
    elif MODE == 1:  # nearest_away
        r = (a + half) & ~mask
        inc_tiny = (a >= half_q).to(bits.dtype)
    elif MODE == 2:  # toward_zero
        r = trunc
        inc_tiny = a * 0
    elif MODE == 3:  # up
        r = trunc + tl.where(neg, 0, dropped)
        inc_tiny = tl.where(neg, 0, nonzero)
    elif MODE == 4:  # down
        r = trunc + tl.where(neg, dropped, 0)
        inc_tiny = tl.where(neg, nonzero, 0)
    elif MODE == 5:  # odd: truncate, then make the last kept bit 1 if anything was dropped
        r = trunc + (dropped & ~count_odd)
        inc_tiny = nonzero
    else:  # stochastic: the remainder as a k-bit fraction (nearest even) plus k random bits
        k = _count(p_ptr, P_RBITS)
        t_tiny = ec - BIAS - MANT - _count(p_ptr, P_Q_EXP) + k
        v = tl.where(is_tiny, sig, rem)
        t = tl.where(is_tiny, t_tiny, k - d)
        frac_k = _rtne_shift(v, t, WIDTH)
        carry_full = (rnd > ~frac_k).to(bits.dtype)  # k == WIDTH: rnd + frac_k >= 2**WIDTH
        ks = tl.minimum(k, WIDTH - 1).to(bits.dtype)  # the k == WIDTH lanes discard this one
        carry_k = (frac_k + (rnd >> (WIDTH - ks))) >> ks
        inc = tl.where(k == WIDTH, carry_full, carry_k)
        r = trunc + (inc << du)
        inc_tiny = inc
    r = tl.where(is_tiny, tl.where(inc_tiny != 0, _pattern(p_ptr, P_Q, bits), 0), r)
    lim = tl.where(neg, _pattern(p_ptr, P_LIM_NEG, bits), _pattern(p_ptr, P_LIM_POS, bits))
    ovf = tl.where(neg, _pattern(p_ptr, P_OVF_NEG, bits), _pattern(p_ptr, P_OVF_POS, bits))
    r = tl.where(r > lim, ovf, r)
    keep = (r != 0) | (_count(p_ptr, P_KEEP_NEG_ZERO) != 0)
    out = r | tl.where(keep, sign, 0)
    inf_full = tl.where(neg, _pattern(p_ptr, P_INF_NEG, bits), _pattern(p_ptr, P_INF_POS, bits))
    nan_full = tl.where(neg, _pattern(p_ptr, P_NAN_NEG, bits), _pattern(p_ptr, P_NAN_POS, bits))
    out = tl.where(a == inf_bits, inf_full, out)
    return tl.where(a > inf_bits, nan_full, out)


@triton.jit(do_not_specialize=["key_lo", "key_hi", "ctr_lo", "ctr_hi"])
def quantize_float(x_ptr, y_ptr, p_ptr, n, key_lo, key_hi, ctr_lo, ctr_hi, WIDTH: tl.constexpr,
                   MANT: tl.constexpr, BIAS: tl.constexpr, ROWS: tl.constexpr, COLS: tl.constexpr,
                   MODE: tl.constexpr, DEEP: tl.constexpr, JOIN: tl.constexpr, BYTES: tl.constexpr):
    """y[i] = x[i] rounded, for n elements, ROWS x COLS of them per program (stochastic: exactly one
    work unit, ROWS = elements per Philox counter). The key and the counter offset come as 32-bit
    halves shifted into int32 range (h - 2**31), so that Triton gives every call the same argument
    types. JOIN (stochastic): the tile is held transposed, each counter's words joined beside each
    other, so that no thread computes a counter another thread also computes. BYTES (stochastic with
    rbits <= 8): a byte a draw, the tile 16 x 64 (row r: byte r // 4 of word r % 4 of counter col)."""
    prog = tl.program_id(0).to(tl.int64)
    if MODE == 6 and JOIN and not BYTES:
        cols = tl.arange(0, COLS)[:, None]
        rows = tl.arange(0, ROWS)[None, :]
    else:
        rows = tl.arange(0, ROWS)[:, None]
        cols = tl.arange(0, COLS)[None, :]
    idx = prog * (ROWS * COLS) + rows * COLS + cols
    inside = idx < n
    x = tl.load(x_ptr + idx, mask=inside, other=0)
    if x.dtype == tl.bfloat16:  # the upper half of a float32 (shifted, not converted: exact everywhere)
        bits = x.to(tl.uint16, bitcast=True).to(tl.uint32) << 16
    elif x.dtype == tl.float16:  # exact, but a GPU's conversion drops a NaN's sign: NaNs by hand
        h = x.to(tl.uint16, bitcast=True).to(tl.uint32)
        nan_bits = ((h & 0x8000) << 16) | 0x7F800000 | ((h & 0x3FF) << 13)
        bits = tl.where((h & 0x7FFF) > 0x7C00, nan_bits, x.to(tl.float32).to(tl.uint32, bitcast=True))
    elif WIDTH == 32:
        bits = x.to(tl.uint32, bitcast=True)
    else:
        bits = x.to(tl.uint64, bitcast=True)
    if MODE == 6:
        k0, k1 = _unbias(key_lo), _unbias(key_hi)
        base = (_unbias(ctr_hi).to(tl.uint64) << 32) | _unbias(ctr_lo).to(tl.uint64)
        if BYTES:  # the unit's first 64 counters from its usual base (256 or 512 counters a unit)
            if WIDTH == 32:
                ctr = base + prog.to(tl.uint64) * 256 + cols.to(tl.uint64)
            else:
                ctr = base + prog.to(tl.uint64) * 512 + cols.to(tl.uint64)
            w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), k0, k1)
            if WIDTH == 32:
                rnd = _byte(w0, w1, w2, w3, rows) << 24
            else:
                rnd = _byte(w0, w1, w2, w3, rows).to(tl.uint64) << 56
        elif JOIN:
            ctr = base + prog.to(tl.uint64) * COLS + tl.arange(0, COLS).to(tl.uint64)
            w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), k0, k1)
            if WIDTH == 32:  # [j, t, s] = word 2t + s, read row-major as [j, r]: word r
                rnd = tl.reshape(tl.join(tl.join(w0, w2), tl.join(w1, w3)), [COLS, ROWS])
            else:  # [j, h]: words 2h (low half) and 2h + 1
                rnd = tl.join(w0, w2).to(tl.uint64) | (tl.join(w1, w3).to(tl.uint64) << 32)
        else:
            ctr = base + prog.to(tl.uint64) * COLS + cols.to(tl.uint64)
            w0, w1, w2, w3 = _philox(ctr.to(tl.uint32), (ctr >> 32).to(tl.uint32), k0, k1)
            if WIDTH == 32:
                rnd = tl.where(rows == 0, w0, tl.where(rows == 1, w1, tl.where(rows == 2, w2, w3)))
            else:
                lo = tl.where(rows == 0, w0, w2).to(tl.uint64)
                hi = tl.where(rows == 0, w1, w3).to(tl.uint64)
                rnd = lo | (hi << 32)
    else:
        rnd = bits
    out = _round_one(bits, rnd, p_ptr, WIDTH, MANT, BIAS, MODE, DEEP)
    if y_ptr.dtype.element_ty == tl.bfloat16:  # the caller checked that the format fits: no bits lost
        y = (out >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    elif y_ptr.dtype.element_ty == tl.float16:  # exact; NaNs by hand again (sign, top payload bits)
        nan_h = ((out >> 16) & 0x8000) | 0x7C00 | ((out >> 13) & 0x3FF)
        y = tl.where((out & 0x7FFFFFFF) > 0x7F800000, nan_h.to(tl.uint16).to(tl.float16, bitcast=True),
                     out.to(tl.float32, bitcast=True).to(tl.float16))
    elif WIDTH == 32:
        y = out.to(tl.float32, bitcast=True)
    else:
        y = out.to(tl.float64, bitcast=True)
    tl.store(y_ptr + idx, y, mask=inside)
