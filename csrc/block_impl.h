/* Block-scaled (OCP MX, e8m0) quantization, included by quantize.c after quantize_impl.h with the
 * same macros (UT, FT, MANT, WBITS, PER_CTR, SFX, ...).
 *
 * Per 1024-element chunk: for each block it touches, the largest magnitude (a max over magnitude
 * patterns: they order as the values do, Inf above every finite value and NaN above Inf) and from it
 * the scale exponent e by the rule (a block straddling two chunks is measured by both; the one it
 * starts in stores its exponent); then y = x * 2**-e (by normal powers of two, so exact unless y
 * falls below the normal range; no overflow, since e follows the block max), y rounded to the element format by the core quantizer's block routine (so
 * stochastic draws follow lp_quantize's layout over the element order), then y * 2**e (exact: the
 * Python side admits only element formats whose values times 2**-127 stay in the input type).
 *
 * A y below the input type's smallest normal is replaced by that normal with y's sign: the element
 * formats the Python side admits have their smallest nonzero value at least 2**33 times larger, and
 * every rounding mode (stochastic with <= 32 bits included) treats both values alike. */

#define ONE ((UT)1)
#define ABS_MASK ((ONE << (WBITS - 1)) - 1)
#define INF_BITS (ABS_MASK ^ ((ONE << MANT) - 1))


/* The rule as one comparison: e = floor(log2 amax) - elem_emax + (amax's mantissa field >= thr). */
static inline UT CAT(bump_threshold_, SFX)(const lp_blockparams *bp)
{
    const UT full = ONE << MANT; /* never reached: floor */
    switch (bp->rule) {
    case LP_RULE_CEIL: /* amax not a power of two */
        return 1;
    case LP_RULE_RCEIL: /* amax > elem_max * 2**k, both in one binade: a larger mantissa field */
        return (CAT(to_bits_, SFX)((FT)bp->elem_max) & (full - 1)) + 1;
    case LP_RULE_EVEN: /* rounding to 1 + elem_prec bits, ties away, carries into the next binade */
        return bp->elem_prec >= MANT ? full : full - (ONE << (MANT - 1 - bp->elem_prec));
    default:
        return full;
    }
}

/* The scale exponent of the len elements at blk (LP_E8M0_NAN_EXP if one is NaN or Inf). A zero or
 * subnormal amax gives -127: its exact exponent is below -126 - elem_emax <= -126 (elem_emax >= 0). */
static inline LP_ALWAYS_INLINE int32_t CAT(block_exponent_, SFX)(const FT *blk, int64_t len, int32_t elem_emax,
                                                                  UT thr)
{
    const UT *src = (const UT *)blk;
    UT m = 0;
    for (int64_t i = 0; i < len; i++) {
        UT a = src[i] & ABS_MASK;
        m = a > m ? a : m;
    }
    if (m >= INF_BITS)
        return LP_E8M0_NAN_EXP;
    int32_t il = (int32_t)(m >> MANT) - (WBITS == 32 ? 127 : 1023);
    int32_t e = il - elem_emax + (int32_t)((m & ((ONE << MANT) - 1)) >= thr);
    e = (m >> MANT) == 0 ? LP_E8M0_MIN : e;
    return e < LP_E8M0_MIN ? LP_E8M0_MIN : (e > LP_E8M0_MAX ? LP_E8M0_MAX : e);
}

/* 2**k as FT for a k where that is a normal number of FT */
static inline FT CAT(pow2_, SFX)(int k)
{
    return CAT(from_bits_, SFX)((UT)(k + (WBITS == 32 ? 127 : 1023)) << MANT);
}

/* x * 2**k for |k| <= 127, exact unless the result falls below FT's normal range; in two steps when
 * 2**k itself is not a normal FT (k = -127 for float). */
static inline FT CAT(scale_pow2_, SFX)(FT x, FT f1, FT f2)
{
    return x * f1 * f2;
}

/* One chunk of at most LP_WORK_UNIT elements starting at element `start`: scale, round, scale back. */
static inline LP_ALWAYS_INLINE void CAT(block_chunk_body_, SFX)(const FT *in, FT *out, int64_t n, int64_t start,
                                                                 int64_t len, const lp_blockparams *bp,
                                                                 int32_t *scale_exp_all, const lp_qparams *ep,
                                                                 int mode, uint64_t seed, uint64_t ctr)
{
    FT tmp[LP_WORK_UNIT], rounded[LP_WORK_UNIT]; /* apart: the block routine's input and output are restrict */
    int32_t local[LP_WORK_UNIT + 2];
    const FT tiny = CAT(pow2_, SFX)(WBITS == 32 ? -126 : -1022);
    const int64_t bs = bp->block, b0 = start / bs;
    const UT thr = CAT(bump_threshold_, SFX)(bp);
    /* the exponents of the blocks this chunk touches; each is stored by the chunk it starts in */
    for (int64_t b = b0; b * bs < start + len; b++) {
        const int64_t end = (b + 1) * bs < n ? (b + 1) * bs : n;
        local[b - b0] = CAT(block_exponent_, SFX)(in + b * bs, end - b * bs, bp->elem_emax, thr);
        if (b * bs >= start)
            scale_exp_all[b] = local[b - b0];
    }
    const int32_t *scale_exp = local - b0;
    for (int64_t s = 0; s < len;) { /* segments of one block each */
        const int64_t g = start + s, b = g / bs;
        const int64_t seg = (b + 1) * bs - g < len - s ? (b + 1) * bs - g : len - s;
        const int32_t e = scale_exp[b] == LP_E8M0_NAN_EXP ? 0 : scale_exp[b];
        const FT f1 = CAT(pow2_, SFX)(e > 64 ? -64 : -e), f2 = CAT(pow2_, SFX)(e > 64 ? 64 - e : 0);
        for (int64_t i = s; i < s + seg; i++) {
            FT x = in[start + i];
            FT y = CAT(scale_pow2_, SFX)(x, f1, f2);
            FT mag = y < 0 ? -y : y;
            FT signed_tiny = x < 0 ? -tiny : tiny;
            tmp[i] = (mag < tiny) & (x != 0) ? signed_tiny : y;
        }
        s += seg;
    }
    if (ep->sub_exp < 1)
        CAT(block_deep_, SFX)(tmp, rounded, len, ep, mode, seed, ctr);
    else
        CAT(block_, SFX)(tmp, rounded, len, ep, mode, seed, ctr);
    for (int64_t s = 0; s < len;) {
        const int64_t g = start + s, b = g / bs;
        const int64_t seg = (b + 1) * bs - g < len - s ? (b + 1) * bs - g : len - s;
        const int32_t e = scale_exp[b];
        if (e == LP_E8M0_NAN_EXP) {
            const FT nan = CAT(from_bits_, SFX)(INF_BITS | (ONE << (MANT - 1)));
            for (int64_t i = s; i < s + seg; i++)
                out[start + i] = nan;
        } else if (bp->elements) {
            for (int64_t i = s; i < s + seg; i++)
                out[start + i] = rounded[i];
        } else {
            const FT f1 = CAT(pow2_, SFX)(e < -64 ? -64 : e), f2 = CAT(pow2_, SFX)(e < -64 ? e + 64 : 0);
            for (int64_t i = s; i < s + seg; i++)
                out[start + i] = CAT(scale_pow2_, SFX)(rounded[i], f1, f2);
        }
        s += seg;
    }
}

LP_CLONES static void CAT(block_chunk_, SFX)(const FT *in, FT *out, int64_t n, int64_t start, int64_t len,
                                             const lp_blockparams *bp, int32_t *scale_exp, const lp_qparams *ep,
                                             int mode, uint64_t seed, uint64_t ctr)
{
    CAT(block_chunk_body_, SFX)(in, out, n, start, len, bp, scale_exp, ep, mode, seed, ctr);
}

void CAT(lp_block_quantize_, SFX)(const FT *in, FT *out, int64_t n, const lp_blockparams *bp, int32_t *scale_exp,
                                  const lp_qparams *ep, lp_rounding mode, uint64_t seed, uint64_t offset, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        CAT(block_chunk_, SFX)(in, out, n, start, len, bp, scale_exp, ep, mode, seed,
                               offset + (uint64_t)c * (LP_WORK_UNIT / PER_CTR));
    }
}

#undef ONE
#undef ABS_MASK
#undef INF_BITS
