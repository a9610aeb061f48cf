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

/* round-to-nearest-even of v * 2**t for a (clamped) shift t, as an integer; one: 1 (lp_qparams.one). */
static inline UT CAT(rtne_shift_, SFX)(UT v, IT t, UT one)
{
    IT tl = t < 0 ? 0 : (t > WBITS - 1 ? WBITS - 1 : t);
    IT tr = t > -1 ? 1 : (-t > WBITS - 1 ? WBITS - 1 : -t);
    UT up = v << (UT)tl;
    UT q = v >> (UT)tr;
    UT round_bit = (v >> (UT)(tr - 1)) & 1;
    UT sticky = (v & ((one << (UT)(tr - 1)) - 1)) != 0;
    UT down = q + (round_bit & (sticky | (q & 1)));
    return t >= 0 ? up : down;
}

/* The biased exponent (<= 0) of the leading bit of a subnormal input pattern a, via an exact int to
 * float conversion (vectorizable, unlike a count of leading zeros). */
static inline IT CAT(subnormal_exponent_, SFX)(UT a)
{
    return (IT)(CAT(to_bits_, SFX)((FT)(SIGNED_T)a) >> MANT) - (IT)((ONE << (WBITS - MANT - 2)) - 1) - MANT + 1;
}

/* Where an input pattern sits on the format's grid: what every rounding mode reads. */
typedef struct {
    UT sign, a;        /* sign bit; magnitude pattern */
    IT ec;             /* the input's biased exponent, at least 1 */
    IT d;              /* bits dropped below the format's last kept bit (clamped to 0..MANT+1) */
    UT unit, mask;     /* 2**d; 2**d - 1 */
    UT rem, trunc;     /* a's dropped bits; a with them cleared */
    UT sig;            /* the significand as an integer (implicit bit included for normal inputs) */
    UT count_odd;      /* unit if the truncated count's code is odd, else 0 */
    UT smask;          /* all ones for negative inputs */
    UT dropped;        /* unit if rem != 0, else 0 */
    UT is_tiny;        /* a is below the smallest nonzero result's range (no shift fits) */
} CAT(lp_grid_, SFX);

static inline LP_ALWAYS_INLINE CAT(lp_grid_, SFX) CAT(grid_of_, SFX)(UT bits, const lp_qparams *p, const int deep)
{
    CAT(lp_grid_, SFX) g;
    g.sign = bits & SIGN_BIT;
    g.a = bits & ABS_MASK;
    IT e = (IT)(g.a >> MANT);
    g.ec = e > 1 ? e : 1;
    /* ex: the input's binade as a biased exponent. For subnormal inputs it is needed only when the
       format's normal range reaches below the input type's ('deep': sub_exp < 1). */
    IT ex = g.ec;
    if (deep == LP_DEEP) /* a compile-time constant (quantize.c): the loops are instantiated per value */
        ex = e == 0 ? CAT(subnormal_exponent_, SFX)(g.a) : g.ec;
    IT below = p->sub_exp - ex; /* binades below the format's min normal, if positive */
    IT d = p->drop0 + ex - g.ec + (below & -(IT)(below > 0));
    if (deep == LP_FLAT) /* no input lies below the format's min normal */
        d = p->drop0;
    g.d = d < 0 ? 0 : (d > MANT + 1 ? MANT + 1 : d); /* d > MANT only on tiny lanes, discarded */
    g.unit = (UT)p->one << (UT)g.d;
    g.mask = g.unit - 1;
    g.rem = g.a & g.mask;
    g.trunc = g.a & ~g.mask;
    /* for d == MANT the pattern holds the exponent's low bit at bit d, the significand its implicit 1 */
    g.sig = e ? (g.a & ((ONE << MANT) - 1)) | (ONE << MANT) : g.a;
    /* without mantissa bits (par_mask set) the code's parity is the exponent's */
    g.count_odd = (((g.sig & ~(UT)p->par_mask) | (g.a & (UT)p->par_mask)) ^ (UT)p->par_xor) & g.unit;
    g.smask = (UT)0 - (bits >> (WBITS - 1));
    g.dropped = (g.rem + g.mask) & g.unit;
    g.is_tiny = g.a < (UT)p->tiny;
    return g;
}

/* The k-bit stochastic rule's carry: frac_k (< 2**k, the fraction as k bits) plus the draw's top k bits
 * reaches 2**k */
static inline LP_ALWAYS_INLINE UT CAT(sr_carry_, SFX)(UT frac_k, UT rnd, IT k)
{
    if (k == WBITS) /* frac_k < 2**W here: carry iff rnd + frac_k >= 2**W */
        return (UT)(rnd > (UT)~frac_k);
    return (frac_k + (rnd >> (UT)(WBITS - k))) >> (UT)k;
}

/* Whether sr_tiny_inc_ may run: FT evaluates in its own precision, and 2**(rbits - q_exp) is a product
 * of two normal powers of two at least 1. */
static inline int CAT(sr_tiny_float_ok_, SFX)(const lp_qparams *p)
{
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    return 0;
#endif
    const int64_t e = (int64_t)p->rbits - (int64_t)p->q_exp, emax = (1 << (WBITS - MANT - 2)) - 1;
    return e >= 0 && e <= 2 * emax;
}

/* Stochastic rounding's carry for a tiny input (|x| < q = 2**q_exp: the result is 0 or q), as the full
 * rule computes it: the k-bit fraction |x| / q rounded to nearest even, plus the draw's top k bits,
 * carries out of k bits. Here |x| * 2**(k - q_exp) is exact in FT (a scaling up by normal powers of two,
 * below 2**k), FT's own addition rounds it to an integer below 2**MANT (ties to even; above, it is one),
 * and the conversion is exact. Other lanes take 0, so no conversion leaves the type's range.
 * sr_tiny_float_ok_ must hold. */
static inline LP_ALWAYS_INLINE UT CAT(sr_tiny_inc_, SFX)(const CAT(lp_grid_, SFX) g, const lp_qparams *p, UT rnd)
{
    const IT k = p->rbits, emax = (IT)((1 << (WBITS - MANT - 2)) - 1);
    const IT e = k - (IT)p->q_exp, e1 = e < emax ? e : emax;
    const FT s1 = CAT(from_bits_, SFX)((UT)(e1 + emax) << MANT), s2 = CAT(from_bits_, SFX)((UT)(e - e1 + emax) << MANT);
    const FT big = CAT(from_bits_, SFX)((UT)(MANT + emax) << MANT); /* 2**MANT */
    FT v = CAT(from_bits_, SFX)(g.a) * s1 * s2;
    v = g.is_tiny ? v : (FT)0;
    return CAT(sr_carry_, SFX)((UT)(v < big ? (v + big) - big : v), rnd, k);
}

/* Stochastic rounding with k == W for an input that is not tiny: the rule's carry out of
 * rem * 2**(W - d) + rnd is that of rem + (rnd's top d bits): the low W - d bits of the first term are 0 */
static inline LP_ALWAYS_INLINE UT CAT(sr_exact_fast_, SFX)(const CAT(lp_grid_, SFX) g, UT rnd)
{
    return (g.a + ((rnd >> 1) >> (UT)(WBITS - 1 - g.d))) & ~g.mask;
}

/* ... with k < W: the rule rounds rem to k bits (nearest even), then carries on adding the k-bit draw:
 * for d > k that is a rounded to nearest even at bit d - k (the bias below; its low bits are garbage the
 * mask drops), plus the draw at that bit; for d <= k the exact case's sum with the draw's top d bits */
static inline LP_ALWAYS_INLINE UT CAT(sr_k_fast_, SFX)(const CAT(lp_grid_, SFX) g, const lp_qparams *p, UT rnd)
{
    const IT k = p->rbits;
    const UT top_k = ~((ONE << (UT)(WBITS - k)) - 1);
    const IT s = g.d - k > 0 ? g.d - k : 0;
    const UT half = ((UT)p->one << (UT)s) >> 1; /* p->one, not ONE: see lp_qparams.one */
    const UT rounds = (UT)0 - (UT)(s > 0); /* a mask, not a branch: the loops stay vectorizable */
    const UT bias = (half - 1 + ((g.a >> (UT)s) & 1)) & rounds;
    return (g.a + bias + (((rnd & top_k) >> 1) >> (UT)(WBITS - 1 - g.d))) & ~g.mask;
}

/* The rounded magnitude pattern r for the shifted range in one mode, and (*inc_tiny) whether a tiny
 * input becomes q. Pure arithmetic on purpose: GCC's vectorizer gives up on 0/1 values it turns into
 * booleans. */
static inline LP_ALWAYS_INLINE UT CAT(round_in_mode_, SFX)(const CAT(lp_grid_, SFX) g, const lp_qparams *p,
                                                           const int mode, UT rnd, UT *inc_tiny)
{
    UT half = g.unit >> 1, half_q = (UT)p->half_q;
    switch (mode) {
    case LP_NEAREST_EVEN: {
        UT lsb = ((g.count_odd >> (UT)g.d) | (g.unit & 1)) & 1; /* d == 0: 1, which makes the sum exact */
        *inc_tiny = (UT)(g.a > half_q);
        return (g.a + (half - 1) + lsb) & ~g.mask;
    }
    case LP_NEAREST_EVEN_ADD: { /* nearest even for params that pass ne_by_addition_ (see there) */
        const UT exp_bits = ONE << MANT, sub = (UT)p->sub_exp << MANT;
        const UT cap = (UT)((INF_BITS >> MANT) - 1 - (UT)p->drop0) << MANT;
        UT eb = g.a & INF_BITS;
        eb = eb > sub ? eb : sub;
        eb = eb < cap ? eb : cap;
        const FT c = CAT(from_bits_, SFX)(eb + (UT)p->drop0 * exp_bits + (exp_bits >> 1));
        *inc_tiny = (UT)(g.a > half_q);
        return CAT(to_bits_, SFX)((CAT(from_bits_, SFX)(g.a) + c) - c);
    }
    case LP_NEAREST_AWAY:
        *inc_tiny = (UT)(g.a >= half_q);
        return (g.a + half) & ~g.mask;
    case LP_TOWARD_ZERO:
        *inc_tiny = 0;
        return g.trunc;
    case LP_UP:
        *inc_tiny = (UT)(g.a != 0) & (UT)(g.sign == 0);
        return g.trunc + (g.dropped & ~g.smask);
    case LP_DOWN:
        *inc_tiny = (UT)(g.a != 0) & (UT)(g.sign != 0);
        return g.trunc + (g.dropped & g.smask);
    case LP_ODD: /* truncate, then make the last kept bit 1 if anything was dropped */
        *inc_tiny = (UT)(g.a != 0);
        return g.trunc + (g.dropped & ~g.count_odd);
    case LP_SR_EXACT_FAST: /* LP_STOCHASTIC with k == W, tiny inputs left to a fix-up pass */
        *inc_tiny = 0;
        return CAT(sr_exact_fast_, SFX)(g, rnd);
    case LP_SR_K_FAST: /* LP_STOCHASTIC with k < W, tiny inputs left to a fix-up pass */
        *inc_tiny = 0;
        return CAT(sr_k_fast_, SFX)(g, p, rnd);
    case LP_SR_EXACT_TINY: /* the fast rules, with the tiny inputs' carry from FT arithmetic */
        *inc_tiny = CAT(sr_tiny_inc_, SFX)(g, p, rnd);
        return CAT(sr_exact_fast_, SFX)(g, rnd);
    case LP_SR_K_TINY:
        *inc_tiny = CAT(sr_tiny_inc_, SFX)(g, p, rnd);
        return CAT(sr_k_fast_, SFX)(g, p, rnd);
    default: { /* LP_STOCHASTIC: gfloat's rule. The remainder, as a k-bit fraction rounded to
                  nearest even, plus k random bits; round away on a carry out of k bits. */
        IT k = p->rbits;
        IT t_tiny = g.ec - (IT)((1 << (WBITS - MANT - 2)) - 1) - MANT - p->q_exp + k;
        UT frac_k = CAT(rtne_shift_, SFX)(g.is_tiny ? g.sig : g.rem, g.is_tiny ? t_tiny : k - g.d, (UT)p->one);
        const UT inc = CAT(sr_carry_, SFX)(frac_k, rnd, k);
        *inc_tiny = inc;
        return g.trunc + (inc << (UT)g.d);
    }
    }
}

/* The output pattern from the rounded magnitude: the tiny range, the format's limits, the sign and
 * (unless 'fast', a compile-time constant: a fix-up pass handles them) Inf and NaN inputs. */
static inline LP_ALWAYS_INLINE UT CAT(finish_, SFX)(const CAT(lp_grid_, SFX) g, UT r, UT inc_tiny,
                                                    const lp_qparams *p, const int fast)
{
    if (fast == LP_FAST_SYM) /* limits alike for both signs, -0 kept: fewer selects a lane */
        return (r > (UT)p->lim_pos ? (UT)p->ovf_pos : r) | g.sign;
    if (!fast)
        r = g.is_tiny ? ((UT)p->q & ((UT)0 - inc_tiny)) : r;
    UT lim = g.sign ? (UT)p->lim_neg : (UT)p->lim_pos;
    UT ovf = g.sign ? (UT)p->ovf_neg : (UT)p->ovf_pos;
    r = r > lim ? ovf : r;
    UT out = r | ((r != 0) | (UT)p->keep_neg_zero ? g.sign : 0);
    if (fast)
        return out;
    UT inf_full = g.sign ? (UT)p->inf_neg_full : (UT)p->inf_pos_full;
    UT nan_full = g.sign ? (UT)p->nan_neg_full : (UT)p->nan_pos_full;
    out = g.a == INF_BITS ? inf_full : out;
    return g.a > INF_BITS ? nan_full : out;
}

/* One input pattern rounded to the format (the three steps above). */
static inline LP_ALWAYS_INLINE UT CAT(round_one_, SFX)(UT bits, const lp_qparams *p, const int mode, const int deep,
                                                       const int fast, UT rnd)
{
    const CAT(lp_grid_, SFX) g = CAT(grid_of_, SFX)(bits, p, deep);
    UT inc_tiny;
    UT r = CAT(round_in_mode_, SFX)(g, p, mode, rnd, &inc_tiny);
    return CAT(finish_, SFX)(g, r, inc_tiny, p, fast);
}


/* The random draws of a block's elements, in element order, from the word-major Philox block (see
 * lowprec.h): float32 reads it as it is; float64's draw of element h C + j (C = counters) joins words
 * 2h and 2h + 1 of counter j, gathered here once so that the rounding loops read draws[i]. */
static inline const UT *CAT(draws_, SFX)(const UT *rnd, UT *draws)
{
#if WBITS == 32
    (void)draws;
    return rnd;
#else
    const uint32_t *w = (const uint32_t *)rnd;
    const int64_t C = LP_WORK_UNIT / PER_CTR;
    for (int64_t h = 0; h < PER_CTR; h++)
        for (int64_t j = 0; j < C; j++)
            draws[h * C + j] = (UT)w[2 * h * C + j] | ((UT)w[(2 * h + 1) * C + j] << 32);
    return draws;
#endif
}

/* The draws of rbits <= 8: element i takes byte i / 256 of word i % 256 of the word-major block of
 * LP_BYTE_DRAW_COUNTERS counters (see lowprec.h), as the top byte of its draw (the rules read the
 * draw's top rbits bits). Four passes of one shift each: the loops vectorize. */
static inline const UT *CAT(byte_draws_, SFX)(const uint32_t *restrict w, UT *restrict draws)
{
    const int64_t W = 4 * LP_BYTE_DRAW_COUNTERS;
    for (int64_t h = 0; h < 4; h++)
        for (int64_t j = 0; j < W; j++)
            draws[h * W + j] = (UT)((w[j] >> (8 * h)) & 0xFF) << (WBITS - 8);
    return draws;
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

/* Whether nearest even may take FT's own addition: |x| + c - c with c = 1.5 * 2**(q + MANT), q the
 * exponent of the format's quantum at x (its normal binade's, or the subnormal one's), puts x + c in
 * c's binade, whose spacing is 2**q, so FT's round-to-nearest-even (the default mode; the build never
 * contracts or reassociates) rounds |x| to the grid, and subtracting c is exact. That needs x < 2**(q +
 * MANT - 1): at least two bits dropped; the ties of the format's codes those of the significand (not
 * so without mantissa bits); the normal range starting within FT's (not 'deep'). For |x| whose c would
 * pass FT's largest exponent, c is capped: such x lie at least 4x above the largest result (the check
 * on the limits), so x + c - c stays above it (or Inf) and overflows as it must. Inf and NaN inputs
 * are patched after, tiny ones take q or 0; q is a normal FT value, so every input that is rounded and
 * every result is normal or zero (flush-to-zero settings of the FPU cannot change them). */
static inline int CAT(ne_by_addition_, SFX)(const lp_qparams *p)
{
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    return 0; /* wider evaluation (x87) would add without rounding */
#endif
    const int64_t top = (int64_t)(INF_BITS >> MANT) - 1 - p->drop0 - 2;
    return p->par_mask == 0 && p->drop0 >= 2 && p->sub_exp >= 1 && (UT)p->tiny >= (ONE << MANT) &&
           (int64_t)((UT)p->lim_pos >> MANT) <= top && (int64_t)((UT)p->lim_neg >> MANT) <= top;
}

/* Whether finish_ may take LP_FAST_SYM: the format's limits do not depend on the sign and it keeps -0
 * (most formats): fewer selects a lane. */
static inline int CAT(fast_sym_, SFX)(const lp_qparams *p)
{
    return p->lim_neg == p->lim_pos && p->ovf_neg == p->ovf_pos && p->keep_neg_zero;
}

/* One deterministic pass over a work unit (mode and deep: constants after inlining). */
static inline LP_ALWAYS_INLINE void CAT(pass_, SFX)(const UT *restrict src, UT *restrict dst, int64_t len,
                                                     const lp_qparams *p, const int mode, const int deep)
{
    enum { PIECE = 256, LINE = 64 / (int)sizeof(UT) };
    for (int64_t lo = 0; lo < len; lo += PIECE) {
        const int64_t m = len - lo < PIECE ? len - lo : PIECE;
        for (int64_t i = 0; i < m; i += LINE) { /* the next unit: hardware prefetchers stop at 4 KiB pages */
            __builtin_prefetch(src + lo + i + LP_WORK_UNIT, 0, 3);
            __builtin_prefetch(dst + lo + i + LP_WORK_UNIT, 1, 3);
        }
        for (int64_t i = 0; i < m; i++)
            dst[lo + i] = CAT(round_one_, SFX)(src[lo + i], p, mode, deep, 0, 0);
    }
}

/* Stochastic rounding of a piece of len <= LP_WORK_UNIT / 4 elements whose draws are draw[0..len): a
 * faster pass that is right but for the exceptional inputs (nonzero tiny ones, Inf, NaN), then a
 * fix-up of those by the full rule, flagged by the counting pass and looked for eight at a time so
 * that a rare one costs little; where they are not rare (over 1 in 128), one pass of the fast rule
 * that takes the tiny inputs' carry from FT arithmetic (or, where FT cannot form it, over 1 in 32,
 * the full rule's). */
static inline LP_ALWAYS_INLINE void CAT(sr_piece_, SFX)(const UT *restrict src, UT *restrict dst, int64_t len,
                                                         const lp_qparams *p, const UT *restrict draw, const int DEEP)
{
    UT tiny_m1 = p->tiny ? (UT)p->tiny - 1 : 0;
    UT nexc = 0; /* as wide as the lanes (len <= LP_WORK_UNIT / 4), not widened to 64 bits per lane */
    uint8_t exc[LP_WORK_UNIT / 4 + 8]; /* 1 where the input is exceptional, zero-padded to whole words */
    /* nonzero inputs below the format's smallest normal (tiny ones too): where a block has none, every
       input is rounded at the same bit (LP_FLAT: a loop-invariant shift) */
    const int64_t top_exp = (int64_t)(INF_BITS >> MANT); /* sub_exp clamped: no shift past UT's width */
    const UT low_m1 = ((UT)(p->sub_exp > 0 ? (p->sub_exp < top_exp ? p->sub_exp : top_exp) : 0) << MANT) - 1;
    UT nlow = 0;
    for (int64_t i = 0; i < len; i++) {
        const UT e = (UT)CAT(exceptional_, SFX)(src[i], tiny_m1);
        exc[i] = (uint8_t)e;
        nexc += e;
        nlow += (UT)((src[i] & ABS_MASK) - 1 < low_m1);
    }
    memset(exc + len, 0, 8);
    /* many tiny inputs (a narrow format's range): one pass of the fast rule with the tiny carry in FT
       arithmetic (over 1 in 128: a scalar fix-up costs what that pass adds to some 8 inputs' rounding),
       or of the full rule (over 1 in 32) */
    const int tiny_pass = CAT(sr_tiny_float_ok_, SFX)(p);
    if ((int64_t)nexc * (tiny_pass ? 128 : 32) > len) {
        if (tiny_pass && p->rbits == WBITS)
            for (int64_t i = 0; i < len; i++)
                dst[i] = CAT(round_one_, SFX)(src[i], p, LP_SR_EXACT_TINY, DEEP, 0, draw[i]);
        else if (tiny_pass)
            for (int64_t i = 0; i < len; i++)
                dst[i] = CAT(round_one_, SFX)(src[i], p, LP_SR_K_TINY, DEEP, 0, draw[i]);
        else
            for (int64_t i = 0; i < len; i++)
                dst[i] = CAT(round_one_, SFX)(src[i], p, LP_STOCHASTIC, DEEP, 0, draw[i]);
        return;
    }
    const int sym = CAT(fast_sym_, SFX)(p);
#define LP_SR_FAST_PASS(RULE, SHIFTS)                                                                 \
    do {                                                                                              \
        if (sym)                                                                                      \
            for (int64_t i = 0; i < len; i++)                                                         \
                dst[i] = CAT(round_one_, SFX)(src[i], p, RULE, SHIFTS, LP_FAST_SYM, draw[i]);         \
        else                                                                                          \
            for (int64_t i = 0; i < len; i++)                                                         \
                dst[i] = CAT(round_one_, SFX)(src[i], p, RULE, SHIFTS, 1, draw[i]);                   \
    } while (0)
    if (!DEEP && nlow == 0 && p->rbits == WBITS)
        LP_SR_FAST_PASS(LP_SR_EXACT_FAST, LP_FLAT);
    else if (!DEEP && nlow == 0)
        LP_SR_FAST_PASS(LP_SR_K_FAST, LP_FLAT);
    else if (p->rbits == WBITS)
        LP_SR_FAST_PASS(LP_SR_EXACT_FAST, DEEP);
    else
        LP_SR_FAST_PASS(LP_SR_K_FAST, DEEP);
#undef LP_SR_FAST_PASS
    for (int64_t c = 0; nexc && c < len; c += 8) { /* eight flags a word: a rare exceptional input costs little */
        uint64_t any;
        memcpy(&any, exc + c, 8);
        if (any)
            for (int64_t i = c; i < c + 8 && i < len; i++)
                if (exc[i])
                    dst[i] = CAT(round_one_, SFX)(src[i], p, LP_STOCHASTIC, DEEP, 0, draw[i]);
    }
}

#if WBITS == 32 && defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 3
#define LP_SR_FUSED 1
#include "sr_round_common.h"
#include "sr_round_avx2.h" /* one fused pass for the common float32 cases: AVX2 (a byte a draw) */
#if defined(LP_SR_AVX512)
#include "sr_round_avx512.h" /* and AVX-512 */
#endif
#endif

static inline LP_ALWAYS_INLINE void CAT(block_body_, SFX)(const FT *in, FT *out, int64_t len,
                                                           const lp_qparams *pp, int mode, uint64_t seed,
                                                           uint64_t ctr0, int more, const int DEEP)
{
    const UT *restrict src = (const UT *)in;
    UT *restrict dst = (UT *)out;
    const lp_qparams params = *pp; /* a local copy: stores to dst cannot alias it */
    const lp_qparams *p = &params;
    UT rnd[LP_WORK_UNIT]; /* stochastic only: word-major Philox output, see lowprec.h */
    /* Deterministic modes: one branch-free pass, instantiated per mode (a constant in each call; nearest
     * even of float32 on AVX2 without AVX-512: ne_unit_avx2_f32); stochastic: the fused pass
     * (sr_unit_avx512_f32 or sr_unit_avx2_f32) where it applies, else the unit's Philox words made
     * first and sr_piece_ a quarter unit at a time. */
    switch (mode) {
    case LP_NEAREST_EVEN:
#if WBITS == 32 && defined(LP_SR_FUSED)
        if (!DEEP && len == LP_WORK_UNIT && p->par_mask == 0 && lp_ne_avx2_ok()) {
            ne_unit_avx2_f32(src, dst, p);
            return;
        }
#endif
        if (!DEEP && CAT(ne_by_addition_, SFX)(p))
            CAT(pass_, SFX)(src, dst, len, p, LP_NEAREST_EVEN_ADD, DEEP);
        else if (!DEEP && p->sub_exp == 1) /* bf16 on float32: one shift for every input */
            CAT(pass_, SFX)(src, dst, len, p, LP_NEAREST_EVEN, LP_FLAT);
        else
            CAT(pass_, SFX)(src, dst, len, p, LP_NEAREST_EVEN, DEEP);
        return;
    case LP_NEAREST_AWAY:
        CAT(pass_, SFX)(src, dst, len, p, LP_NEAREST_AWAY, DEEP);
        return;
    case LP_TOWARD_ZERO:
        CAT(pass_, SFX)(src, dst, len, p, LP_TOWARD_ZERO, DEEP);
        return;
    case LP_UP:
        CAT(pass_, SFX)(src, dst, len, p, LP_UP, DEEP);
        return;
    case LP_DOWN:
        CAT(pass_, SFX)(src, dst, len, p, LP_DOWN, DEEP);
        return;
    case LP_ODD:
        CAT(pass_, SFX)(src, dst, len, p, LP_ODD, DEEP);
        return;
    default:
        break;
    }
#if WBITS == 32 && defined(LP_SR_FUSED)
    if (!DEEP && len == LP_WORK_UNIT && (p->rbits == WBITS || p->rbits <= 8)) {
#if defined(LP_SR_AVX512)
        if (lp_sr_avx512_ok()) {
            sr_unit_avx512_f32(src, dst, p, seed, ctr0, more);
            return;
        }
#endif
        if (p->rbits <= 8 && lp_sr_avx2_ok()) {
            sr_unit_avx2_f32(src, dst, p, seed, ctr0);
            return;
        }
    }
#endif
    UT drawn[LP_WORK_UNIT]; /* the draws in element order where rnd is not that already */
    const UT *restrict draw;
    if (p->rbits <= 8) { /* a byte a draw: a quarter of a word an element (see lowprec.h) */
        philox_fill_best((uint32_t *)rnd, LP_BYTE_DRAW_COUNTERS, seed, ctr0);
        draw = CAT(byte_draws_, SFX)((const uint32_t *)rnd, drawn);
    } else {
        philox_fill_best((uint32_t *)rnd, LP_WORK_UNIT / PER_CTR, seed, ctr0);
        draw = CAT(draws_, SFX)(rnd, drawn);
    }
    /* a quarter unit at a time: its counting pass leaves the input in L1 for the rounding pass, and the
       stores of one quarter drain while the next is read (2**24 float32 values, fp8 to 32-bit draws
       without AVX-512's fused pass: 1.2 -> 1.0 ns an element) */
    for (int64_t lo = 0; lo < len; lo += LP_WORK_UNIT / 4)
        CAT(sr_piece_, SFX)(src + lo, dst + lo, len - lo < LP_WORK_UNIT / 4 ? len - lo : LP_WORK_UNIT / 4, p,
                            draw + lo, DEEP);
}

/* The block kernel for formats whose normal range starts within the input type's (the usual case),
 * and for those reaching below it ('deep'); both compiled for several instruction sets. more: the
 * caller's next block is likely the whole one after this (its Philox words may be made ahead). */
LP_CLONES static void CAT(block_, SFX)(const FT *in, FT *out, int64_t len, const lp_qparams *p, int mode,
                                       uint64_t seed, uint64_t ctr0, int more)
{
    CAT(block_body_, SFX)(in, out, len, p, mode, seed, ctr0, more, 0);
}

LP_CLONES static void CAT(block_deep_, SFX)(const FT *in, FT *out, int64_t len, const lp_qparams *p,
                                            int mode, uint64_t seed, uint64_t ctr0, int more)
{
    CAT(block_body_, SFX)(in, out, len, p, mode, seed, ctr0, more, LP_DEEP);
}

void CAT(lp_quantize_, SFX)(const FT *in, FT *out, int64_t n, const lp_qparams *p, lp_rounding mode,
                            uint64_t seed, uint64_t offset, int nthreads)
{
#if WBITS == 32
    if (mode == LP_NEAREST_EVEN && lp_half_rne(in, out, n, p, nthreads)) /* fp16 and bf16 at memory speed */
        return;
#endif
    int64_t nblocks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t start = b * LP_WORK_UNIT;
        int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        uint64_t ctr = offset + (uint64_t)b * (LP_WORK_UNIT / PER_CTR);
        const int more = start + 2 * LP_WORK_UNIT <= n; /* a whole block follows (static schedule) */
        FT copy[LP_WORK_UNIT]; /* in place: the block routine reads its input after writing (restrict) */
        const FT *src = in + start;
        if (in == out) {
            memcpy(copy, src, (size_t)len * sizeof(FT));
            src = copy;
        }
        if (p->sub_exp < 1)
            CAT(block_deep_, SFX)(src, out + start, len, p, mode, seed, ctr, more);
        else
            CAT(block_, SFX)(src, out + start, len, p, mode, seed, ctr, more);
    }
}

#undef ONE
#undef SIGN_BIT
#undef ABS_MASK
#undef INF_BITS
