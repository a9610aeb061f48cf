/* MAC-unit kernel template: C[m x n] = A[m x k] @ B[k x n] with every product and accumulation
 * rounded as DESIGN.md section 4 says. quantize.c includes it once per working type (UT, FT, MANT,
 * WBITS, SFX as for quantize_impl.h), after quantize_impl.h, whose round_one_SFX it uses.
 *
 * Arithmetic in FT: the Python side picks float only where that is exact enough (products exact in
 * float, formats of at most 21 bits; or float32 operands summed into a float32 accumulator in nearest
 * even by fused multiply-adds, acc_fma), else double (operands of at most 26 significant bits, formats
 * of at most 51). A product is then exact. A sum s + p is computed in FT with TwoSum's exact error
 * and rounded to odd (sticky in the last bit); rounding that to a format at least two bits narrower
 * than FT is the correct rounding of the exact sum in every mode (round-to-odd's double-rounding
 * property). Each output column advances one k-step at a time, so a tile of columns vectorizes.
 *
 * Stochastic rounding: the rounding event of kind e (0 product, 1 accumulation, 2 chunk total,
 * 3 output) at step t of output o = offset + i * n + j uses word t % 4 of Philox4x32-10(seed, counter
 * (4 o + e) Q + floor(t / 4)), Q = floor(k / 4) + 1 (t = k for the output rounding), as a k-bit draw
 * with k = rbits <= 32: its top k bits, whatever FT is. (Each kind of each output has its own run of
 * counters, and a counter's four words serve four steps: a quarter of a Philox call per rounding.)
 */

#ifndef LP_MAC_ONCE /* what does not depend on the working type */
#define LP_MAC_ONCE
#include <math.h> /* fmaf */
#include "mac_half_f16c.h"
#ifdef LP_MAC_F16C
#define LP_HAVE_F16C lp_have_f16c()
#else
#define LP_HAVE_F16C 0
#endif
#define LP_MAC_OUTS (LP_MAC_TILE_ROWS * LP_MAC_TILE_COLS)
/* 32-bit words of a tile's stochastic draw buffer: the product and accumulation draws of four steps
 * (step-major, the tile's outputs contiguous), the two kinds' counters (uint64), and the scratch of
 * lp_mac_tile_draws (four words and a counter an output) */
#define LP_MAC_DRAWS (2 * 4 * LP_MAC_OUTS + 2 * 2 * LP_MAC_OUTS + 4 * LP_MAC_OUTS + 2 * LP_MAC_OUTS)
/* The draws of event kind e at step t of a tile's R x tw outputs from (i0, j0) (see the header), one
 * Philox call for all of them: a pointer to them, output (r, j) at [r * tw + j], in `scratch`
 * (6 R tw words). */
/* The counters of event kind e at step t of a tile's R x tw outputs from (i0, j0), output (r, j) at
 * ctrs[r * tw + j] (see the header). */
static inline void lp_mac_tile_counters(uint64_t *ctrs, int R, int tw, int64_t i0, int64_t j0, int64_t ldo,
                                        const lp_macparams *mp, int64_t k, int e, int64_t t)
{
    const uint64_t q = (uint64_t)(k / 4 + 1);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < tw; j++) {
            const uint64_t o = mp->offset + (uint64_t)((i0 + r) * ldo + j0 + j);
            ctrs[r * tw + j] = (4 * o + (uint64_t)e) * q + (uint64_t)(t / 4);
        }
}

static inline const uint32_t *lp_mac_tile_draws(uint32_t *scratch, int R, int tw, int64_t i0, int64_t j0,
                                                int64_t ldo, const lp_macparams *mp, int64_t k, int e, int64_t t)
{
    const int outs = R * tw;
    uint64_t *ctrs = (uint64_t *)(scratch + 4 * outs);
    lp_mac_tile_counters(ctrs, R, tw, i0, j0, ldo, mp, k, e, t);
    philox_fill_best_at(scratch, outs, mp->seed, 0, ctrs);
    return scratch + (t % 4) * outs;
}

/* constants of lp_sr_float_round (the double kernel's stochastic rounding in double arithmetic) */
typedef struct {
    uint64_t b_min;                       /* the min normal's binade, as a pattern */
    double rne, draw, eps, trunc;         /* per binade: 1.5 2**(drop0 - k), 2**(drop0 - 84) (q 2**-32),
                                             2**(drop0 - 53 - k) (q 2**-(k+1)), 1.5 2**drop0 */
    uint32_t top;                         /* the draw's top k bits */
} lp_sr_float;

static inline int lp_sr_float_ok(const lp_qparams *p)
{
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
    (void)p;
    return 0;
#else
    const int64_t k = p->rbits, top_binade = (int64_t)(p->lim_pos >> 52);
    return p->keep_neg_zero && k >= 1 && k <= 32 && p->drop0 >= k + 2 && p->drop0 <= 52 && p->sub_exp >= 1
           && (int64_t)p->sub_exp + p->drop0 - 85 >= 1          /* the least scaled constants (draw, eps)
                                                                      are normal: 2**(drop0 - 85) at most */
           && top_binade + p->drop0 + 2 <= 2046;                 /* the largest is finite */
#endif
}

static inline lp_sr_float lp_sr_float_of(const lp_qparams *p)
{
    const int k = p->rbits, d = p->drop0;
    lp_sr_float c;
    c.b_min = (uint64_t)p->sub_exp << 52;
    c.rne = ldexp(1.5, d - k);
    c.draw = ldexp(1.0, d - 84);
    c.eps = ldexp(1.0, d - 53 - k);
    c.trunc = ldexp(1.5, d);
    c.top = k == 32 ? 0xFFFFFFFFu : ~((1u << (32 - k)) - 1u);
    return c;
}
#endif

#define MAC_ONE ((UT)1)
#define MAC_EXP_MASK ((((MAC_ONE << (WBITS - 1)) - 1)) ^ ((MAC_ONE << MANT) - 1))

/* s + p rounded to odd in FT (exact when the FT sum is exact). An exact zero sum is +0 but under
 * rounding down, where IEEE 754 makes it -0 unless both terms are +0 (`down`: a constant). */
static inline LP_ALWAYS_INLINE FT CAT(add_rto_, SFX)(FT s, FT p, const int down_mode)
{
    FT r = s + p;
    if (down_mode) {
        UT both_plus_zero = (UT)((CAT(to_bits_, SFX)(s) | CAT(to_bits_, SFX)(p)) == 0);
        r = (r == 0 && !both_plus_zero) ? -(FT)0.0 : r;
    }
    FT bp = r - s;
    FT e = (s - (r - bp)) + (p - bp); /* TwoSum: s + p == r + e exactly */
    UT rb = CAT(to_bits_, SFX)(r), eb = CAT(to_bits_, SFX)(e);
    /* inexact and r even (and finite): step to the odd neighbour, away from 0 if e has r's sign */
    /* all-ones masks, not 0/1 flags: GCC's vectorizer turns known 0/1 values into booleans it cannot
       widen */
    UT inexact = (UT)0 - (UT)((UT)(eb << 1) != 0);
    UT finite = (UT)0 - (UT)((rb & MAC_EXP_MASK) != MAC_EXP_MASK);
    UT step = inexact & finite & ((UT)0 - ((~rb) & 1));
    UT down = (UT)0 - ((rb ^ eb) >> (WBITS - 1)); /* e and r differ in sign: the odd one is nearer 0 */
    return CAT(from_bits_, SFX)(rb + (step & (down | 1)));
}

#if WBITS == 32
/* x (a float32 sum, finite, below fp16's overflow threshold) rounded to nearest even on IEEE binary16's
 * grid, in float arithmetic alone (so that it vectorizes on every instruction set): big = 1.5 * 2**13
 * * 2**e, with 2**e x's binade or fp16's normal one, 2**-14, if lower, has float spacing 2**(e - 10),
 * fp16's spacing at x; x + big is x rounded onto it in nearest even (big is an even multiple of it),
 * and subtracting big is exact. x's sign is kept where the result is zero. (Equal to F16C's
 * float-to-half-to-float round trip on every float32 value below the threshold; half the integer
 * operations of a bit-pattern rounding. tests/test_mac.py checks the rule against numpy's cast.) */
static inline LP_ALWAYS_INLINE float lp_half_rne_f32(float x)
{
    const uint32_t u = to_bits_f32(x), binade = u & 0x7F800000u;
    const float big = from_bits_f32(binade > 0x38800000u ? binade : 0x38800000u) * 0x1.8p13f; /* 2**-14 */
    return from_bits_f32(to_bits_f32((x + big) - big) | (u & 0x80000000u));
}
#endif

#if WBITS == 64
/* Stochastic rounding with k-bit draws in double arithmetic alone, for values that are neither tiny
 * nor past the format's range (mp->fast) and either exact or rounded to odd. With q the format's
 * spacing at |x| (q = max(|x|'s binade, the min normal's) * 2**(drop0 - 52)) and D the draw's top
 * k bits as a multiple of 2**-32:
 *   y = RNE(|x|, q 2**-k) + D q          (the rule's remainder as k bits, nearest even, plus the draw)
 *   result = floor(y / q) q              (a carry out of k bits rounds away)
 * where RNE(v, g) = (v + 1.5 2**52 g) - 1.5 2**52 g, and the floor is RNE(y - q/2 + q 2**-(k+1), q):
 * y's fraction of q is a multiple of 2**-k, so that argument never lands on a tie. The draw enters as
 * the signed integer D 2**32 - 2**31 (its top bit flipped: a signed conversion, which every
 * instruction set has), which takes the q/2 off. Every step is exact while the format's precision
 * plus k plus 2 is at most 53 (drop0 >= k + 2); the caller checks that and that the scaled constants
 * stay normal (lp_sr_float_ok). Negative x runs the mirror image (the scales carry x's sign); x is
 * never -0 (a zero result is +0, so the accumulator, which starts at +0, never holds -0: an exact
 * sum is -0 only of two -0 terms). Same bits as round_one_f64's LP_SR_K_FAST otherwise
 * (tests/test_mac.py holds the rule to the reference quantizer). */
static inline LP_ALWAYS_INLINE double lp_sr_float_round(double x, const lp_sr_float c, uint32_t draw,
                                                        const int on_k_grid)
{
    const uint64_t u = to_bits_f64(x), binade = u & 0x7FF0000000000000ull;
    /* the scale carries x's sign, so every step is the mirror image of |x|'s (RNE is symmetric) */
    const double bs = from_bits_f64((binade > c.b_min ? binade : c.b_min) | (u & 0x8000000000000000ull));
    const double big = bs * c.rne;
    /* on_k_grid (a constant): the caller proved x a multiple of q 2**-k, so that RNE leaves it */
    const double y = (on_k_grid ? x : (x + big) - big) + (double)(int32_t)((draw & c.top) ^ 0x80000000u) * (bs * c.draw);
    const double big2 = bs * c.trunc;
    return ((y + bs * c.eps) + big2) - big2;
}
#endif

/* Round x to a format. `fast` (a constant) leaves out the rules for tiny nonzero values, Inf and NaN:
 * the caller has proved that none can occur (mp->fast). */
static inline LP_ALWAYS_INLINE FT CAT(mac_q_, SFX)(FT x, const lp_qparams *p, const int mode, const int fast,
                                                   uint32_t draw)
{
    UT rnd = (UT)draw << (WBITS - 32); /* the draw's bits on top */
    return CAT(from_bits_, SFX)(CAT(round_one_, SFX)(CAT(to_bits_, SFX)(x), p, mode, 0, fast, rnd));
}

/* A tile: R rows x tw columns, constants: LP_MAC_TILE_ROWS x LP_MAC_TILE_COLS (the caller pads to
 * whole tiles) or 1 x 1 (narrow products: a sum, a few columns). The rows' accumulators are
 * independent chains of dependent roundings; interleaving them lets the processor overlap their
 * latencies. Output (i, j) draws its random bits as output offset + i * ldo + j. */
static inline LP_ALWAYS_INLINE void CAT(mac_tile_, SFX)(const FT *a, const FT *b, FT *c, int64_t i0, int64_t k,
                                                        int64_t n, int64_t j0, int64_t ldo,
                                                        const lp_macparams *mp, uint32_t *draws, const int mode,
                                                        const int has_mul, const int chunked, const int R,
                                                        const int tw, const int fast, const int native,
                                                        const int op32)
{
    FT s[LP_MAC_TILE_ROWS][LP_MAC_TILE_COLS], tot[LP_MAC_TILE_ROWS][LP_MAC_TILE_COLS];
    const int sr = mode == LP_STOCHASTIC || mode == LP_SR_K_FAST;
    /* local copies: the rounding selects between their fields per lane, which vectorizes only for
       values the compiler knows cannot change */
    const lp_qparams mulp = has_mul ? *mp->mul : *mp->acc, accp = *mp->acc, chunkp = *mp->chunk_acc,
                     outp = *mp->out;
    const FT *init = (const FT *)mp->init;
#if WBITS == 64
    const lp_sr_float srf = native >= 7 ? lp_sr_float_of(mp->acc) : (lp_sr_float){0};
#endif
    for (int r = 0; r < R; r++)
        for (int j = 0; j < tw; j++) {
            const FT start = init ? init[(i0 + r) * n + j0 + j] : (FT)0.0;
            s[r][j] = chunked ? (FT)0.0 : start;
            tot[r][j] = chunked ? start : (FT)0.0;
        }
    /* stochastic: the product and accumulation draws of four steps at a time, one Philox counter per
       output and kind, step-major with the tile's outputs contiguous: Philox's word-major output is
       that layout, so the column loop reads it as it is. The buffer comes from the caller (the heap:
       LP_MAC_DRAWS words), not from this frame, which is inlined once per variant. */
    const int outs = R * tw;
    uint32_t *draws0 = draws, *draws1 = draws + 4 * LP_MAC_OUTS;
    uint64_t *ctr0 = (uint64_t *)(draws + 8 * LP_MAC_OUTS), *ctr1 = ctr0 + LP_MAC_OUTS;
    uint32_t *scratch = draws + 12 * LP_MAC_OUTS; /* chunk totals' and outputs' draws */
    if (sr) { /* step 0's counters of the product and accumulation kinds; each block of four steps adds 1 */
        lp_mac_tile_counters(ctr0, R, tw, i0, j0, ldo, mp, k, 0, 0);
        lp_mac_tile_counters(ctr1, R, tw, i0, j0, ldo, mp, k, 1, 0);
    }
    for (int64_t t = 0; t < k; t++) {
#if WBITS == 32 && defined(LP_MAC_F16C)
        if (native == 5 && R % 4 == 0 && tw == 16) { /* the steps up to the chunk's end (or k's), in
                                                        registers, four rows at a time */
            const int64_t t1 = chunked && (t / mp->chunk + 1) * mp->chunk < k ? (t / mp->chunk + 1) * mp->chunk : k;
            for (int r = 0; r < R; r += 4)
                lp_mac_half_span_f16c(a + (i0 + r) * k, k, b + j0, mp->b_broadcast ? 0 : n, t, t1, &s[r][0],
                                      LP_MAC_TILE_COLS);
            t = t1 - 1; /* the chunk's end, below */
        } else
#endif
        {
            /* op32 (a constant): a and b hold float32 values (mp->ops_f32), converted as read */
            const int64_t boff = (mp->b_broadcast ? 0 : t * n) + j0;
            const FT *brow = b + (op32 ? 0 : boff);
            const float *brow32 = (const float *)(const void *)b + (op32 ? boff : 0);
            const int64_t tt = t % 4;
            if (sr && tt == 0) {
                philox_fill_best_at(draws1, outs, mp->seed, 0, ctr1);
                if (has_mul)
                    philox_fill_best_at(draws0, outs, mp->seed, 0, ctr0);
                for (int u = 0; u < outs; u++) {
                    ctr0[u]++;
                    ctr1[u]++;
                }
            }
            for (int r = 0; r < R; r++) {
                const FT av = op32 ? (FT)((const float *)(const void *)a)[(i0 + r) * k + t] : a[(i0 + r) * k + t];
                const uint32_t *d0 = draws0 + (tt * R + r) * tw, *d1 = draws1 + (tt * R + r) * tw;
                /* a loop for the vectorizer (unrolled lane by lane first, a short step's columns were
                   vectorized across the rows instead, with a permute per lane) */
                LP_VECTOR_LOOP
                for (int j = 0; j < tw; j++) {
                    FT p = av * (op32 ? (FT)brow32[j] : brow[j]);
                    if (has_mul)
                        p = CAT(mac_q_, SFX)(p, &mulp, mode, fast, sr ? d0[j] : 0);
                    if (native == 1) /* acc is FT's own format, nearest even: FT's sum is the rounded one */
                        s[r][j] += p;
#if WBITS == 32
                    else if (native == 4) /* ... and the exact product (float32 operands: up to 48 bits) is
                                             summed by an FMA, rounded once */
                        s[r][j] = fmaf(av, brow[j], s[r][j]);
                    else if (native == 2) /* acc is binary16, nearest even, no Inf or NaN (tiny values are
                                             rounded right: lp_half_rne_f32) */
                        s[r][j] = lp_half_rne_f32(CAT(add_rto_, SFX)(s[r][j], p, 0));
                    else if (native == 3 || native == 5) /* ... and s, p have at most 11 significant
                                             bits: float's nearest-even sum (24 >= 2 * 11 + 2 bits) rounds to
                                             half as the exact sum does (5: by F16C where the tile is whole) */
                        s[r][j] = lp_half_rne_f32(s[r][j] + p);
#endif
#if WBITS == 64
                    else if (native >= 7) /* ... and rounded in double arithmetic (lp_sr_float_round;
                                             8: every sum on the k-bit grid below acc's, mp->exact_sums 2) */
                        s[r][j] = lp_sr_float_round(s[r][j] + p, srf, d1[j], native == 8);
#endif
                    else if (native == 6) /* the sum is exact (mp->exact_sums) */
                        s[r][j] = CAT(mac_q_, SFX)(s[r][j] + p, &accp, mode, fast, sr ? d1[j] : 0);
                    else
                        s[r][j] = CAT(mac_q_, SFX)(CAT(add_rto_, SFX)(s[r][j], p, mode == LP_DOWN), &accp, mode, fast,
                                                   sr ? d1[j] : 0);
                }
            }
        }
        if (chunked && ((t + 1) % mp->chunk == 0 || t + 1 == k) && mp->chunk_native) {
            for (int r = 0; r < R; r++) /* FT's addition is the correctly rounded chunk_acc sum */
                for (int j = 0; j < tw; j++) {
                    tot[r][j] += s[r][j];
                    s[r][j] = 0.0;
                }
        } else if (chunked && ((t + 1) % mp->chunk == 0 || t + 1 == k)) {
            const uint32_t *d2 = sr ? lp_mac_tile_draws(scratch, R, tw, i0, j0, ldo, mp, k, 2, t) : NULL;
            for (int r = 0; r < R; r++)
                for (int j = 0; j < tw; j++) {
                    const FT sum = native >= 6 ? tot[r][j] + s[r][j]
                                               : CAT(add_rto_, SFX)(tot[r][j], s[r][j], mode == LP_DOWN);
                    tot[r][j] = CAT(mac_q_, SFX)(sum, &chunkp, mode, fast, sr ? d2[r * tw + j] : 0);
                    s[r][j] = 0.0;
                }
        }
    }
    const uint32_t *d3 = sr ? lp_mac_tile_draws(scratch, R, tw, i0, j0, ldo, mp, k, 3, k) : NULL;
    for (int r = 0; r < R; r++)
        for (int j = 0; j < tw; j++) {
            FT v = chunked ? tot[r][j] : s[r][j];
            c[(i0 + r) * n + j0 + j] = CAT(mac_q_, SFX)(v, &outp, mode, fast, sr ? d3[r * tw + j] : 0);
        }
}

/* A tile's rows from i0 (one row if narrow), every column; specialized on the mode and on the presence of a product
 * rounding and of chunks, so that the inner loops carry no per-element branches. */
#define LP_MAC_ROWS_OP(MODE, MUL, CHUNKED, FAST, NATIVE, OP32)                                    \
    if (narrow)                                                                                     \
        for (int64_t j0 = 0; j0 < n; j0++)                                                          \
            CAT(mac_tile_, SFX)(a, b, c, i0, k, n, j0, ldo, mp, draws, MODE, MUL, CHUNKED, 1, 1, FAST, NATIVE, \
                                OP32);                                                              \
    else                                                                                            \
        for (int64_t j0 = 0; j0 < n; j0 += LP_MAC_TILE_COLS)                                             \
            CAT(mac_tile_, SFX)(a, b, c, i0, k, n, j0, ldo, mp, draws, MODE, MUL, CHUNKED,          \
                                LP_MAC_TILE_ROWS, LP_MAC_TILE_COLS, FAST, NATIVE, OP32);
#define LP_MAC_ROWS_N(MODE, MUL, CHUNKED, FAST, NATIVE) LP_MAC_ROWS_OP(MODE, MUL, CHUNKED, FAST, NATIVE, 0)
/* the double kernel's fast stochastic variants, on float64 operands or (ops_f32) float32 ones */
#define LP_MAC_ROWS_SR(MUL, CHUNKED, NATIVE)                                                        \
    if (mp->ops_f32) {                                                                              \
        LP_MAC_ROWS_OP(LP_SR_K_FAST, MUL, CHUNKED, 1, NATIVE, 1)                                    \
    } else {                                                                                        \
        LP_MAC_ROWS_OP(LP_SR_K_FAST, MUL, CHUNKED, 1, NATIVE, 0)                                    \
    }
#define LP_MAC_ROWS(MODE, MUL, CHUNKED, FAST) LP_MAC_ROWS_N(MODE, MUL, CHUNKED, FAST, 0)
/* nearest even: FT's own accumulation where acc is FT's format (the float kernel only) */
#define LP_MAC_ROWS_RNE(MUL, CHUNKED, FAST)                                                         \
    if (MAC_FAST && !(MUL) && mp->acc_native && mp->acc_fma) {                                      \
        LP_MAC_ROWS_N(LP_NEAREST_EVEN, 0, CHUNKED, FAST, 4 * MAC_FAST)                              \
    } else if (MAC_FAST && mp->acc_native) {                                                        \
        LP_MAC_ROWS_N(LP_NEAREST_EVEN, MUL, CHUNKED, FAST, MAC_FAST)                                \
    } else if (MAC_FAST && FAST && mp->acc_half == 2 && !(MUL) && LP_HAVE_F16C) {                   \
        LP_MAC_ROWS_N(LP_NEAREST_EVEN, 0, CHUNKED, FAST, 5 * MAC_FAST)                              \
    } else if (MAC_FAST && FAST && mp->acc_half == 2) {                                             \
        LP_MAC_ROWS_N(LP_NEAREST_EVEN, MUL, CHUNKED, FAST, 3 * MAC_FAST)                            \
    } else if (MAC_FAST && FAST && mp->acc_half) {                                                  \
        LP_MAC_ROWS_N(LP_NEAREST_EVEN, MUL, CHUNKED, FAST, 2 * MAC_FAST)                            \
    } else {                                                                                        \
        LP_MAC_ROWS_N(LP_NEAREST_EVEN, MUL, CHUNKED, FAST, 0)                                       \
    }

/* the fast variants exist where MAC_FAST is 1 (the float kernel), for the deterministic modes; the
 * double kernel has one for stochastic rounding */
#define LP_MAC_MODES(MUL, CHUNKED)                                                                  \
    if (MAC_FAST && mp->fast) {                                                                     \
        switch (mp->mode) {                                                                         \
        case LP_NEAREST_EVEN: LP_MAC_ROWS_RNE(MUL, CHUNKED, MAC_FAST); break;                        \
        case LP_NEAREST_AWAY: LP_MAC_ROWS(LP_NEAREST_AWAY, MUL, CHUNKED, MAC_FAST); break;          \
        case LP_TOWARD_ZERO: LP_MAC_ROWS(LP_TOWARD_ZERO, MUL, CHUNKED, MAC_FAST); break;            \
        case LP_UP: LP_MAC_ROWS(LP_UP, MUL, CHUNKED, MAC_FAST); break;                              \
        case LP_DOWN: LP_MAC_ROWS(LP_DOWN, MUL, CHUNKED, MAC_FAST); break;                          \
        default: LP_MAC_ROWS(LP_ODD, MUL, CHUNKED, MAC_FAST); break;                                \
        }                                                                                           \
    } else if (WBITS == 64 && mp->fast && mp->mode == LP_STOCHASTIC) {                              \
        /* the k-bit rule without its tiny-range arm (k <= 32 < 64): values never tiny, as fast says */ \
        if (mp->exact_sums == 2 && lp_sr_float_ok(mp->acc)) {                                       \
            LP_MAC_ROWS_SR(MUL, CHUNKED, 8)                                                         \
        } else if (mp->exact_sums && lp_sr_float_ok(mp->acc)) {                                     \
            LP_MAC_ROWS_SR(MUL, CHUNKED, 7)                                                         \
        } else if (mp->exact_sums) {                                                                \
            LP_MAC_ROWS_SR(MUL, CHUNKED, 6)                                                         \
        } else {                                                                                    \
            LP_MAC_ROWS_SR(MUL, CHUNKED, 0)                                                         \
        }                                                                                           \
    } else {                                                                                        \
        switch (mp->mode) {                                                                         \
        case LP_NEAREST_EVEN: LP_MAC_ROWS_RNE(MUL, CHUNKED, 0); break;                               \
        case LP_NEAREST_AWAY: LP_MAC_ROWS(LP_NEAREST_AWAY, MUL, CHUNKED, 0); break;                 \
        case LP_TOWARD_ZERO: LP_MAC_ROWS(LP_TOWARD_ZERO, MUL, CHUNKED, 0); break;                   \
        case LP_UP: LP_MAC_ROWS(LP_UP, MUL, CHUNKED, 0); break;                                     \
        case LP_DOWN: LP_MAC_ROWS(LP_DOWN, MUL, CHUNKED, 0); break;                                 \
        case LP_ODD: LP_MAC_ROWS(LP_ODD, MUL, CHUNKED, 0); break;                                   \
        default: LP_MAC_ROWS(LP_STOCHASTIC, MUL, CHUNKED, 0); break;                                \
        }                                                                                           \
    }

MAC_CLONES static void CAT(mac_rows_, SFX)(const FT *a, const FT *b, FT *c, int64_t i0, int64_t k, int64_t n,
                                            int64_t ldo, const lp_macparams *mp, int narrow, uint32_t *draws)
{
    const int has_mul = mp->mul != NULL, chunked = mp->chunk > 0;
    if (has_mul && chunked)
        LP_MAC_MODES(1, 1)
    else if (has_mul)
        LP_MAC_MODES(1, 0)
    else if (chunked)
        LP_MAC_MODES(0, 1)
    else
        LP_MAC_MODES(0, 0)
}

int CAT(lp_mac_matmul_, SFX)(const FT *a, const FT *b, FT *c, int64_t m, int64_t k, int64_t n, int64_t ldo,
                             const lp_macparams *mp, int nthreads)
{
    const int narrow = n < LP_MAC_TILE_COLS; /* one output at a time; no padding needed */
    if (WBITS == 32 && mp->fast && mp->mode == LP_STOCHASTIC)
        return -1; /* the float kernel's fast variants are deterministic only */
    if (mp->ops_f32 && (WBITS == 32 || !mp->fast || mp->mode != LP_STOCHASTIC))
        return -1; /* float32 operands: the double kernel's fast stochastic variants only */
    const int64_t rows = narrow ? 1 : LP_MAC_TILE_ROWS;
    if (m < 0 || k < 0 || n < 0 || ldo < 0 || m % rows || (!narrow && n % LP_MAC_TILE_COLS))
        return -1;
    if (nthreads < 1 || m * n * k < 65536)
        nthreads = 1;
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1)
#endif
    for (int64_t i0 = 0; i0 < m; i0 += rows) {
        /* stochastic rounding's draw buffers, per call (so per thread) */
        uint32_t *draws = mp->mode == LP_STOCHASTIC ? (uint32_t *)malloc(LP_MAC_DRAWS * sizeof(uint32_t)) : NULL;
        if (mp->mode == LP_STOCHASTIC && !draws) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = 1;
            continue;
        }
        CAT(mac_rows_, SFX)(a, b, c, i0, k, n, ldo, mp, narrow, draws);
        free(draws);
    }
    return failed ? -2 : 0;
}

#undef LP_MAC_ROWS
#undef LP_MAC_ROWS_N
#undef LP_MAC_ROWS_OP
#undef LP_MAC_ROWS_SR
#undef LP_MAC_ROWS_RNE
#undef LP_MAC_MODES
#undef MAC_ONE
#undef MAC_EXP_MASK
