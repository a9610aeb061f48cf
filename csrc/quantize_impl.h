/* Quantization kernel template, included by quantize.c once per input type with these macros set:
 *   UT     unsigned integer type of the pattern (uint32_t / uint64_t)
 *   FT     floating type (float / double)
 *   MANT   stored mantissa bits of the input type (23 / 52)
 *   WBITS  width of UT and of one random draw (32 / 64)
 *   PER_CTR elements per Philox counter (4 / 2)
 *   SFX    name suffix (f32 / f64)
 *
 * The algorithm (CPFloat's idea, branch-free so the compiler vectorizes it):
 * for a magnitude pattern a >= tiny, the pattern is linear in the value within a binade and carries
 * into the exponent field exactly when the significand overflows. Rounding to the format is rounding
 * the pattern to a multiple of 2**d, where d = drop0 + (binades below the format's min normal). For
 * a < tiny the value is below the smallest nonzero result q, so the result is 0 or q.
 * Everything is computed for every element and selected; specials are patched at the end. */

#define ONE ((UT)1)
#define SIGN_BIT (ONE << (WBITS - 1))
#define ABS_MASK (SIGN_BIT - 1)
#define INF_BITS (ABS_MASK ^ ((ONE << MANT) - 1))

/* round-to-nearest-even of v * 2**t for a (clamped) shift t, as an integer. */
static inline UT CAT(rtne_shift_, SFX)(UT v, IT t)
{
    IT tl = t < 0 ? 0 : (t > WBITS - 1 ? WBITS - 1 : t);
    IT tr = t > -1 ? 1 : (-t > WBITS - 1 ? WBITS - 1 : -t);
    UT up = v << (UT)tl;
    UT q = v >> (UT)tr;
    UT round_bit = (v >> (UT)(tr - 1)) & 1;
    UT sticky = (v & ((ONE << (UT)(tr - 1)) - 1)) != 0;
    UT down = q + (round_bit & (sticky | (q & 1)));
    return t >= 0 ? up : down;
}

/* The biased exponent (<= 0) of the leading bit of a subnormal input pattern a, via an exact int to
 * float conversion (vectorizable, unlike a count of leading zeros). */
static inline IT CAT(subnormal_exponent_, SFX)(UT a)
{
    return (IT)(CAT(to_bits_, SFX)((FT)(SIGNED_T)a) >> MANT) - (IT)((ONE << (WBITS - MANT - 2)) - 1) - MANT + 1;
}

static inline LP_ALWAYS_INLINE UT CAT(round_one_, SFX)(UT bits, const lp_qparams *p, const int mode, const int deep, const int fast,
                                                       UT rnd)
{
    UT sign = bits & SIGN_BIT;
    UT a = bits & ABS_MASK;
    IT e = (IT)(a >> MANT);
    IT ec = e > 1 ? e : 1;
    /* ex: the input's binade as a biased exponent. For subnormal inputs it is needed only when the
       format's normal range reaches below the input type's ('deep': sub_exp < 1). */
    IT ex = ec;
    if (deep) /* a compile-time constant: the loops are instantiated with and without */
        ex = e == 0 ? CAT(subnormal_exponent_, SFX)(a) : ec;
    IT below = p->sub_exp - ex; /* binades below the format's min normal, if positive */
    IT d = p->drop0 + ex - ec + (below & -(IT)(below > 0));
    d = d < 0 ? 0 : (d > MANT + 1 ? MANT + 1 : d); /* d > MANT only on tiny lanes, discarded */
    UT unit = ONE << (UT)d;
    UT mask = unit - 1;
    UT rem = a & mask;
    UT trunc = a & ~mask;
    UT half = unit >> 1;
    /* the significand as an integer: its bit d is the parity of the kept count (for d == MANT the
       pattern holds the exponent's low bit there, the significand its implicit 1) */
    UT sig = e ? (a & ((ONE << MANT) - 1)) | (ONE << MANT) : a;
    /* unit if the truncated count's code is odd; without mantissa bits, the exponent's parity */
    UT count_odd = (((sig & ~(UT)p->par_mask) | (a & (UT)p->par_mask)) ^ (UT)p->par_xor) & unit;
    UT smask = (UT)0 - (bits >> (WBITS - 1)); /* all ones for negative inputs */
    UT dropped = (rem + mask) & unit;          /* unit if rem != 0, else 0 */
    UT is_tiny = a < (UT)p->tiny;
    UT half_q = (UT)p->half_q;
    UT r, inc_tiny;

    /* Per mode: the rounded pattern r for the shifted range, and whether a tiny input becomes q.
     * Pure arithmetic on purpose: GCC's vectorizer gives up on 0/1 values it turns into booleans. */
    switch (mode) {
    case LP_NEAREST_EVEN: {
        UT lsb = ((count_odd >> (UT)d) | (unit & 1)) & 1; /* d == 0: 1, which makes the sum below exact */
        r = (a + (half - 1) + lsb) & ~mask;
        inc_tiny = (UT)(a > half_q);
        break;
    }
    case LP_NEAREST_AWAY:
        r = (a + half) & ~mask;
        inc_tiny = (UT)(a >= half_q);
        break;
    case LP_TOWARD_ZERO:
        r = trunc;
        inc_tiny = 0;
        break;
    case LP_UP:
        r = trunc + (dropped & ~smask);
        inc_tiny = (UT)(a != 0) & (UT)(sign == 0);
        break;
    case LP_DOWN:
        r = trunc + (dropped & smask);
        inc_tiny = (UT)(a != 0) & (UT)(sign != 0);
        break;
    case LP_ODD: /* truncate, then make the last kept bit 1 if anything was dropped */
        r = trunc + (dropped & ~count_odd);
        inc_tiny = (UT)(a != 0);
        break;
    case LP_SR_EXACT_FAST: { /* LP_STOCHASTIC with k == W, tiny inputs left to a fix-up pass */
        UT frac = (rem << (UT)(WBITS - 1 - d)) << 1; /* the remainder, exact, left-aligned */
        r = trunc + ((UT)(rnd > (UT)~frac) << (UT)d);
        inc_tiny = 0;
        break;
    }
    case LP_SR_K_FAST: { /* LP_STOCHASTIC with k < W, tiny inputs left to a fix-up pass */
        IT k = p->rbits;
        UT frac_k = CAT(rtne_shift_, SFX)(rem, k - d);
        r = trunc + (((frac_k + (rnd >> (UT)(WBITS - k))) >> (UT)k) << (UT)d);
        inc_tiny = 0;
        break;
    }
    default: { /* LP_STOCHASTIC: gfloat's rule. The remainder, as a k-bit fraction rounded to
                  nearest even, plus k random bits; round away on a carry out of k bits. */
        IT k = p->rbits;
        IT t_tiny = ec - (IT)((1 << (WBITS - MANT - 2)) - 1) - MANT - p->q_exp + k;
        UT v = is_tiny ? sig : rem;
        IT t = is_tiny ? t_tiny : k - d;
        UT frac_k = CAT(rtne_shift_, SFX)(v, t);
        UT inc;
        if (k == WBITS) /* frac_k < 2**W here: carry iff rnd + frac_k >= 2**W */
            inc = (UT)(rnd > (UT)~frac_k);
        else
            inc = (frac_k + (rnd >> (UT)(WBITS - k))) >> (UT)k;
        r = trunc + (inc << (UT)d);
        inc_tiny = inc;
        break;
    }
    }
    /* 'fast' (a compile-time constant) leaves nonzero tiny inputs, Inf and NaN to a fix-up pass */
    if (!fast)
        r = is_tiny ? ((UT)p->q & ((UT)0 - inc_tiny)) : r;

    UT lim = sign ? (UT)p->lim_neg : (UT)p->lim_pos;
    UT ovf = sign ? (UT)p->ovf_neg : (UT)p->ovf_pos;
    r = r > lim ? ovf : r;
    UT out = r | ((r != 0) | (UT)p->keep_neg_zero ? sign : 0);
    if (fast)
        return out;

    UT inf_full = sign ? (UT)p->inf_neg_full : (UT)p->inf_pos_full;
    UT nan_full = sign ? (UT)p->nan_neg_full : (UT)p->nan_pos_full;
    out = a == INF_BITS ? inf_full : out;
    return a > INF_BITS ? nan_full : out;
}


/* The random draw of in-block element i from the word-major Philox block (see lowprec.h). */
static inline UT CAT(word_, SFX)(const UT *rnd, int64_t i)
{
#if WBITS == 32
    return rnd[i];
#else
    const uint32_t *w = (const uint32_t *)rnd;
    int64_t C = LP_WORK_UNIT / PER_CTR, h = i / C, j = i % C;
    return (UT)w[2 * h * C + j] | ((UT)w[(2 * h + 1) * C + j] << 32);
#endif
}

/* One block of at most LP_WORK_UNIT elements starting at global element index `start` (a multiple of
 * PER_CTR). Compiled for several instruction sets (runtime dispatch) where the compiler can. */
/* An input the fast loops get wrong: nonzero below the smallest nonzero result, Inf or NaN (zero is
 * right already; a - 1 wraps it out of the first test). */
static inline int CAT(exceptional_, SFX)(UT bits, UT tiny_m1)
{
    UT a = bits & ABS_MASK;
    return (a - 1 < tiny_m1) | (a >= INF_BITS);
}

static inline LP_ALWAYS_INLINE void CAT(block_body_, SFX)(const FT *in, FT *out, int64_t len,
                                                           const lp_qparams *pp, int mode, uint64_t seed,
                                                           uint64_t ctr0, const int DEEP)
{
    const UT *restrict src = (const UT *)in;
    UT *restrict dst = (UT *)out;
    const lp_qparams params = *pp; /* a local copy: stores to dst cannot alias it */
    const lp_qparams *p = &params;
    UT rnd[LP_WORK_UNIT]; /* stochastic only: word-major Philox output, see lowprec.h */
    /* Deterministic modes: one branch-free pass. Stochastic: a faster pass that is right but for
     * the exceptional inputs (nonzero tiny ones, Inf, NaN), then a fix-up of those by the full
     * rule, looked for 16 elements at a time so that a rare one costs little. */
#define LOOP(MODE, FAST, RND)                                                                       \
    for (int64_t i = 0; i < len; i++)                                                               \
        dst[i] = CAT(round_one_, SFX)(src[i], p, MODE, DEEP, FAST, RND);                            \
    return;
    switch (mode) {
    case LP_NEAREST_EVEN: LOOP(LP_NEAREST_EVEN, 0, 0)
    case LP_NEAREST_AWAY: LOOP(LP_NEAREST_AWAY, 0, 0)
    case LP_TOWARD_ZERO: LOOP(LP_TOWARD_ZERO, 0, 0)
    case LP_UP: LOOP(LP_UP, 0, 0)
    case LP_DOWN: LOOP(LP_DOWN, 0, 0)
    case LP_ODD: LOOP(LP_ODD, 0, 0)
    default:
        break;
    }
#undef LOOP
    philox_fill_best((uint32_t *)rnd, LP_WORK_UNIT / PER_CTR, seed, ctr0);
    if (p->rbits == WBITS) {
        for (int64_t i = 0; i < len; i++)
            dst[i] = CAT(round_one_, SFX)(src[i], p, LP_SR_EXACT_FAST, DEEP, 1, CAT(word_, SFX)(rnd, i));
    } else {
        for (int64_t i = 0; i < len; i++)
            dst[i] = CAT(round_one_, SFX)(src[i], p, LP_SR_K_FAST, DEEP, 1, CAT(word_, SFX)(rnd, i));
    }
    UT tiny_m1 = p->tiny ? (UT)p->tiny - 1 : 0;
    for (int64_t c = 0; c < len; c += 16) {
        int64_t end = c + 16 < len ? c + 16 : len;
        UT any = 0;
        for (int64_t i = c; i < end; i++)
            any |= (UT)CAT(exceptional_, SFX)(src[i], tiny_m1);
        if (any)
            for (int64_t i = c; i < end; i++)
                if (CAT(exceptional_, SFX)(src[i], tiny_m1))
                    dst[i] = CAT(round_one_, SFX)(src[i], p, LP_STOCHASTIC, DEEP, 0, CAT(word_, SFX)(rnd, i));
    }
}

/* The block kernel for formats whose normal range starts within the input type's (the usual case),
 * and for those reaching below it ('deep'); both compiled for several instruction sets. */
LP_CLONES static void CAT(block_, SFX)(const FT *in, FT *out, int64_t len, const lp_qparams *p, int mode,
                                       uint64_t seed, uint64_t ctr0)
{
    CAT(block_body_, SFX)(in, out, len, p, mode, seed, ctr0, 0);
}

LP_CLONES static void CAT(block_deep_, SFX)(const FT *in, FT *out, int64_t len, const lp_qparams *p,
                                            int mode, uint64_t seed, uint64_t ctr0)
{
    CAT(block_body_, SFX)(in, out, len, p, mode, seed, ctr0, 1);
}

void CAT(lp_quantize_, SFX)(const FT *in, FT *out, int64_t n, const lp_qparams *p, lp_rounding mode,
                            uint64_t seed, uint64_t offset, int nthreads)
{
    int64_t nblocks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t start = b * LP_WORK_UNIT;
        int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        uint64_t ctr = offset + (uint64_t)b * (LP_WORK_UNIT / PER_CTR);
        FT copy[LP_WORK_UNIT]; /* in place: the block routine reads its input after writing (restrict) */
        const FT *src = in + start;
        if (in == out) {
            memcpy(copy, src, (size_t)len * sizeof(FT));
            src = copy;
        }
        if (p->sub_exp < 1)
            CAT(block_deep_, SFX)(src, out + start, len, p, mode, seed, ctr);
        else
            CAT(block_, SFX)(src, out + start, len, p, mode, seed, ctr);
    }
}

#undef ONE
#undef SIGN_BIT
#undef ABS_MASK
#undef INF_BITS
