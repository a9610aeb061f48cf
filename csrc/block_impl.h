/* Block-scaled (OCP MX, e8m0) quantization, included by quantize.c after quantize_impl.h with the
 * same macros (UT, FT, MANT, WBITS, PER_CTR, SFX, ...).
 *
 * Per 1024-element chunk: for each block it touches, the largest magnitude (a max over magnitude
 * patterns: they order as the values do, Inf above every finite value and NaN above Inf) and from it
 * the scale exponent e by the rule (a block straddling two chunks is measured by both; the one it
 * starts in stores its exponent); then y = x * 2**-e (by normal powers of two, so exact unless y
 * falls below the normal range; no overflow, since e follows the block max), y rounded to the element
 * format by the core quantizer's rules (so stochastic draws follow lp_quantize's layout over the
 * element order), then y * 2**e (exact: the Python side admits only element formats whose values
 * times 2**-127 stay in the input type). A y below the input type's smallest normal is replaced by
 * that normal with y's sign (scaled_input2_).
 *
 * Each step is one pass over the chunk with per-element block exponents: scaling in (into a buffer),
 * rounding (straight into out), scaling back (in out). Where every block of the chunk has e in
 * [-126, 126] the powers are one normal power of two each way; elsewhere they are taken in two steps. */

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

/* The largest magnitude pattern of the len elements at blk. */
static inline LP_ALWAYS_INLINE UT CAT(amax_bits_, SFX)(const FT *blk, int64_t len)
{
    const UT *src = (const UT *)blk;
    UT m = 0;
    for (int64_t i = 0; i < len; i++) {
        UT a = src[i] & ABS_MASK;
        m = a > m ? a : m;
    }
    return m;
}

/* The scale exponent of a block of largest magnitude pattern m (LP_E8M0_NAN_EXP if it holds a NaN or
 * an Inf). A zero or subnormal amax gives -127: its exact exponent is below -126 - elem_emax <= -126
 * (elem_emax >= 0). */
static inline LP_ALWAYS_INLINE int32_t CAT(block_exponent_, SFX)(UT m, int32_t elem_emax, UT thr)
{
    /* selects, not an early return: chunk_exponents_whole_ vectorizes it over blocks */
    int32_t e = (int32_t)(m >> MANT) - (WBITS == 32 ? 127 : 1023) - elem_emax +
                (int32_t)((m & ((ONE << MANT) - 1)) >= thr);
    e = (m >> MANT) == 0 ? LP_E8M0_MIN : e;
    e = e < LP_E8M0_MIN ? LP_E8M0_MIN : (e > LP_E8M0_MAX ? LP_E8M0_MAX : e);
    return m >= INF_BITS ? LP_E8M0_NAN_EXP : e;
}

/* 2**k as FT for a k where that is a normal number of FT */
static inline FT CAT(pow2_of_, SFX)(IT k)
{
    return CAT(from_bits_, SFX)((UT)(k + (WBITS == 32 ? 127 : 1023)) << MANT);
}

/* The pattern of x * f1 * f2 (powers of two: exact unless below FT's normal range), where that is
 * below FT's smallest normal replaced by that normal with x's sign (0 stays 0). Compared as patterns:
 * 0/1 values vectorize. */
static inline LP_ALWAYS_INLINE UT CAT(scaled_input2_, SFX)(FT x, FT f1, FT f2)
{
    const UT y = CAT(to_bits_, SFX)(x * f1 * f2), bits = CAT(to_bits_, SFX)(x);
    const UT tiny = ONE << MANT;
    const UT replace = (UT)((y & ABS_MASK) < tiny) & (UT)((bits & ABS_MASK) != 0);
    return replace ? (bits & ~ABS_MASK) | tiny : y;
}

/* scaled_input2_ by 2**-e, -126 <= e <= 126 (one normal power). */
static inline LP_ALWAYS_INLINE UT CAT(scaled_input_, SFX)(FT x, IT e)
{
    return CAT(scaled_input2_, SFX)(x, CAT(pow2_of_, SFX)(-e), (FT)1);
}

/* The exponents of the blocks a chunk touches, each stored by the chunk it starts in, and each
 * element's in shift (0 in a NaN block; an all-zero block is scaled by e = 0: zeros round to themselves
 * on any grid, and -127 is stored). Returns whether every block's 2**e and 2**-e are normal FT values.
 * Any block size and length (blocks may straddle chunks; the last may be partial). */
static inline LP_ALWAYS_INLINE int CAT(chunk_exponents_, SFX)(const FT *in, int64_t n, int64_t start, int64_t len,
                                                              const int64_t bs, const lp_blockparams *bp, UT thr,
                                                              int32_t *scale_exp_all, int32_t *local, IT *shift,
                                                              int *nan_blocks)
{
    const int64_t b0 = start / bs;
    int normal = 1;
    for (int64_t b = b0; b * bs < start + len; b++) {
        const int64_t end = (b + 1) * bs < n ? (b + 1) * bs : n;
        const UT m = CAT(amax_bits_, SFX)(in + b * bs, end - b * bs);
        const int32_t e = CAT(block_exponent_, SFX)(m, bp->elem_emax, thr);
        if (b * bs >= start)
            scale_exp_all[b] = e;
        const int32_t es = e == LP_E8M0_NAN_EXP || m == 0 ? 0 : e;
        local[b - b0] = e;
        normal &= (es >= -126) & (es <= 126);
        *nan_blocks |= e == LP_E8M0_NAN_EXP;
        const int64_t s = b * bs > start ? b * bs - start : 0;
        const int64_t stop = end - start < len ? end - start : len;
        for (int64_t i = s; i < stop; i++)
            shift[i] = es;
    }
    return normal;
}

/* chunk_exponents_ where every block lies whole in the chunk (bs, a constant, divides LP_WORK_UNIT and n):
 * the maxima first, then the exponents of all the chunk's blocks in one branch-free loop (it vectorizes
 * over blocks), then each element's. */
static inline LP_ALWAYS_INLINE int CAT(chunk_exponents_whole_, SFX)(const FT *in, int64_t start, int64_t len,
                                                                    const int64_t bs, const lp_blockparams *bp,
                                                                    UT thr, int32_t *scale_exp_all, int32_t *local,
                                                                    IT *shift, int *nan_blocks)
{
    const int64_t nb = len / bs, b0 = start / bs;
    const int32_t emax = bp->elem_emax;
    UT m[LP_WORK_UNIT / 16];
    IT es[LP_WORK_UNIT / 16];
    for (int64_t b = 0; b < nb; b++)
        m[b] = CAT(amax_bits_, SFX)(in + start + b * bs, bs);
    int32_t normal = 1, nan = 0;
    for (int64_t b = 0; b < nb; b++) {
        const UT mb = m[b];
        const int32_t special = mb >= INF_BITS;
        const int32_t e = CAT(block_exponent_, SFX)(mb, emax, thr);
        scale_exp_all[b0 + b] = e;
        local[b] = e;
        const int32_t es1 = special | (mb == 0) ? 0 : e;
        es[b] = es1;
        normal &= (es1 >= -126) & (es1 <= 126);
        nan |= special;
    }
    for (int64_t b = 0; b < nb; b++)
        for (int64_t j = 0; j < bs; j++)
            shift[b * bs + j] = es[b];
    *nan_blocks |= nan;
    return normal;
}

/* One chunk of at most LP_WORK_UNIT elements starting at element `start`: scale, round, scale back (in
 * one pass where every block's scale allows it). */
static inline LP_ALWAYS_INLINE void CAT(block_chunk_body_, SFX)(const FT *in, FT *out, int64_t n, int64_t start,
                                                                 int64_t len, const lp_blockparams *bp,
                                                                 int32_t *scale_exp_all, const lp_qparams *ep,
                                                                 int mode, uint64_t seed, uint64_t ctr)
{
    FT tmp[LP_WORK_UNIT]; /* the scaled inputs: the block routine's input and output are restrict */
    IT shift[LP_WORK_UNIT]; /* each element's block exponent (0 in a NaN block) */
    int32_t local[LP_WORK_UNIT + 2];
    const int64_t bs = bp->block, b0 = start / bs;
    const UT thr = CAT(bump_threshold_, SFX)(bp);
    int nan_blocks = 0, normal;
    if (bs == 32 && n % 32 == 0) /* (LP_WORK_UNIT is a multiple of 32: a chunk holds whole blocks) */
        normal = CAT(chunk_exponents_whole_, SFX)(in, start, len, 32, bp, thr, scale_exp_all, local, shift, &nan_blocks);
    else if (bs == 16 && n % 16 == 0)
        normal = CAT(chunk_exponents_whole_, SFX)(in, start, len, 16, bp, thr, scale_exp_all, local, shift, &nan_blocks);
    else
        normal = CAT(chunk_exponents_, SFX)(in, n, start, len, bs, bp, thr, scale_exp_all, local, shift, &nan_blocks);
    if (normal) { /* one power of two per element each way (the usual case) */
        for (int64_t i = 0; i < len; i++)
            tmp[i] = CAT(from_bits_, SFX)(CAT(scaled_input_, SFX)(in[start + i], shift[i]));
    } else {
        for (int64_t i = 0; i < len; i++) {
            const IT e = shift[i];
            const FT f1 = CAT(pow2_of_, SFX)(e > 64 ? -64 : -e), f2 = CAT(pow2_of_, SFX)(e > 64 ? 64 - e : 0);
            tmp[i] = CAT(from_bits_, SFX)(CAT(scaled_input2_, SFX)(in[start + i], f1, f2));
        }
    }
    /* rounded straight into out (its stores spread over the rounding, not in one burst after it),
       scaled back there */
    FT *res = out + start;
    if (ep->sub_exp < 1)
        CAT(block_deep_, SFX)(tmp, res, len, ep, mode, seed, ctr, 0);
    else
        CAT(block_, SFX)(tmp, res, len, ep, mode, seed, ctr, 0);
    if (!bp->elements && normal) { /* (bp->elements: out keeps the elements, unscaled) */
        for (int64_t i = 0; i < len; i++)
            res[i] = res[i] * CAT(pow2_of_, SFX)(shift[i]);
    } else if (!bp->elements) {
        for (int64_t i = 0; i < len; i++) {
            const IT e = shift[i];
            const FT f1 = CAT(pow2_of_, SFX)(e < -64 ? -64 : e), f2 = CAT(pow2_of_, SFX)(e < -64 ? e + 64 : 0);
            res[i] = res[i] * f1 * f2;
        }
    }
    for (int64_t b = b0; nan_blocks && b * bs < start + len; b++) {
        const int64_t s = b * bs > start ? b * bs - start : 0;
        const int64_t stop = (b + 1) * bs - start < len ? (b + 1) * bs - start : len;
        if (local[b - b0] == LP_E8M0_NAN_EXP)
            for (int64_t i = s; i < stop; i++)
                out[start + i] = CAT(from_bits_, SFX)(INF_BITS | (ONE << (MANT - 1)));
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

/* -- blocks down the columns: a block format along an inner axis without moving that axis ----------
 * x as slabs of b rows of `cols` elements (row-major): each column of a slab is one block. A tile of
 * w = LP_WORK_UNIT / b columns at a time: the columns' maxima (a vertical max, vectorized across the
 * columns), their exponents, then block_chunk_body_'s three passes over the tile in row order, so a
 * deterministic mode gives its bits (stochastic draws would follow another order: not offered). A tile
 * reads all its input before it writes: in == out is allowed. */
LP_CLONES static void CAT(block_cols_tile_, SFX)(const FT *in, FT *out, int64_t b, int64_t cols, int64_t c0,
                                                 int64_t w, const lp_blockparams *bp, const lp_qparams *ep,
                                                 int mode)
{
    FT tmp[LP_WORK_UNIT], res[LP_WORK_UNIT];
    UT m[LP_WORK_UNIT];
    IT es[LP_WORK_UNIT];
    const UT thr = CAT(bump_threshold_, SFX)(bp);
    for (int64_t c = 0; c < w; c++)
        m[c] = 0;
    for (int64_t r = 0; r < b; r++) {
        const UT *row = (const UT *)(in + r * cols + c0);
        for (int64_t c = 0; c < w; c++) {
            const UT a = row[c] & ABS_MASK;
            m[c] = a > m[c] ? a : m[c];
        }
    }
    int32_t normal = 1, nan = 0;
    for (int64_t c = 0; c < w; c++) {
        const int32_t special = m[c] >= INF_BITS;
        const int32_t e = CAT(block_exponent_, SFX)(m[c], bp->elem_emax, thr);
        const int32_t e1 = special | (m[c] == 0) ? 0 : e;
        es[c] = e1;
        normal &= (e1 >= -126) & (e1 <= 126);
        nan |= special;
    }
    for (int64_t r = 0; r < b; r++) {
        const FT *x = in + r * cols + c0;
        FT *t = tmp + r * w;
        if (normal) {
            for (int64_t c = 0; c < w; c++)
                t[c] = CAT(from_bits_, SFX)(CAT(scaled_input_, SFX)(x[c], es[c]));
        } else {
            for (int64_t c = 0; c < w; c++) {
                const IT e = es[c];
                const FT f1 = CAT(pow2_of_, SFX)(e > 64 ? -64 : -e), f2 = CAT(pow2_of_, SFX)(e > 64 ? 64 - e : 0);
                t[c] = CAT(from_bits_, SFX)(CAT(scaled_input2_, SFX)(x[c], f1, f2));
            }
        }
    }
    if (ep->sub_exp < 1)
        CAT(block_deep_, SFX)(tmp, res, b * w, ep, mode, 0, 0, 0);
    else
        CAT(block_, SFX)(tmp, res, b * w, ep, mode, 0, 0, 0);
    for (int64_t r = 0; r < b; r++) {
        FT *y = out + r * cols + c0;
        const FT *v = res + r * w;
        if (normal) {
            for (int64_t c = 0; c < w; c++)
                y[c] = v[c] * CAT(pow2_of_, SFX)(es[c]);
        } else {
            for (int64_t c = 0; c < w; c++) {
                const IT e = es[c];
                const FT f1 = CAT(pow2_of_, SFX)(e < -64 ? -64 : e), f2 = CAT(pow2_of_, SFX)(e < -64 ? e + 64 : 0);
                y[c] = v[c] * f1 * f2;
            }
        }
    }
    for (int64_t c = 0; nan && c < w; c++)
        if (m[c] >= INF_BITS)
            for (int64_t r = 0; r < b; r++)
                out[r * cols + c0 + c] = CAT(from_bits_, SFX)(INF_BITS | (ONE << (MANT - 1)));
}

void CAT(lp_block_cols_, SFX)(const FT *in, FT *out, int64_t slabs, int64_t b, int64_t cols, const lp_blockparams *bp,
                              const lp_qparams *ep, lp_rounding mode, int nthreads)
{
    if (b < 1 || b > LP_WORK_UNIT || cols < 1 || slabs < 1)
        return;
    const int64_t w = LP_WORK_UNIT / b, tiles = (cols + w - 1) / w;
    nthreads = lp_team(slabs * b * cols, nthreads);
    LP_PARALLEL_FOR
    for (int64_t t = 0; t < slabs * tiles; t++) {
        const int64_t s = t / tiles, c0 = (t % tiles) * w, wt = cols - c0 < w ? cols - c0 : w;
        CAT(block_cols_tile_, SFX)(in + s * b * cols, out + s * b * cols, b, cols, c0, wt, bp, ep, mode);
    }
}

#undef ONE
#undef ABS_MASK
#undef INF_BITS
