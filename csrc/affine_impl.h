/* Integer-affine quantization, included by quantize.c after quantize_impl.h per input type (FT, SFX, ...).
 *
 * q = clamp(round(x / s) + zp, qmin, qmax), value = (q - zp) * s, each rounded once: x / s is formed in
 * double and moved to its odd neighbour toward the exact quotient when inexact (the residual comes
 * exactly from fma), which any rounding to an integer treats as the exact quotient; the integer
 * rounding is float arithmetic in the deterministic modes (lp_to_integer) and in stochastic rounding
 * with 64 random bits (lp_sr_integer: the core quantizer's rule for a 64-bit integer format, its draws
 * laid out as lp_quantize_f64's over the n quotients; other draw widths take the core's block routine
 * on those doubles, params ip); the product (q - zp) * s is
 * rounded to odd likewise before its one rounding to float (float32 input) or is double's own product
 * (float64 input). NaN stays NaN. */

#include <math.h>

#ifndef LP_AFFINE_COMMON
#define LP_AFFINE_COMMON
/* q moved to its odd neighbour toward the exact value when the residual (exact - q, or its sign) is
 * nonzero and q is even (finite): round to odd. A q that underflowed to 0 (its sign the exact value's)
 * becomes the smallest subnormal of that sign, so a nonzero exact value stays nonzero (a directed
 * rounding of it to any format then leaves 0). Bit arithmetic, no libm call: it vectorizes. */
static inline double lp_odd_fix(double q, double residual)
{
    /* signed 64-bit lanes and selects (not unsigned products): the form GCC vectorizes */
    const int64_t bits = (int64_t)to_bits_f64(q);
    const int64_t even = ~bits & 1;
    const int64_t special = (bits & 0x7FF0000000000000ll) == 0x7FF0000000000000ll;
    const int64_t fix = (residual != 0 && !special) ? even : 0;
    const int64_t step = ((residual > 0) == (bits >= 0)) ? fix : -fix; /* away from 0, or toward it */
    return from_bits_f64((uint64_t)(bits + step));
}

/* q (double) rounded to an integer in a deterministic mode, clamped to +-2**62 (beyond any format's
 * range), as the core quantizer rounds to a 64-bit integer: |q| + 2**52 - 2**52 is |q| to the nearest
 * even integer below 2**52 (above, |q| is one), and the directed modes step from floor(|q|). */
static inline LP_ALWAYS_INLINE double lp_to_integer(double q, const int mode)
{
    /* every arm computed unconditionally, then selected: GCC does not speculate a floating-point
       operation inside a conditional, and a branch per element would not vectorize */
    const double big = 4503599627370496.0, top = 4611686018427387904.0;
    double a = fabs(q);
    a = a < top ? a : top;
    const double shifted = (a + big) - big; /* exact for a >= 2**52 too: a is an integer there */
    const double near = a < big ? shifted : a;
    const double below = near - 1.0;
    const double low = near > a ? below : near; /* floor(|q|) */
    const double inexact = a > low ? 1.0 : 0.0;
    const double half = low * 0.5;
    const double even = ((half + big) - big) == half ? 1.0 : 0.0; /* low is even */
    const double frac = a - low; /* exact */
    double m;
    switch (mode) {
    case LP_NEAREST_EVEN: m = near; break;
    case LP_NEAREST_AWAY: m = low + (frac >= 0.5 ? 1.0 : 0.0); break;
    case LP_TOWARD_ZERO: m = low; break;
    case LP_UP: m = low + (q > 0 ? inexact : 0.0); break;
    case LP_DOWN: m = low + (q < 0 ? inexact : 0.0); break;
    default: m = low + inexact * even; break; /* odd */
    }
    const double minus = -m;
    return q < 0 ? minus : m;
}

/* Stochastic rounding's choice between low and high with 64 random bits r = hi * 2**32 + lo (gfloat's
 * rule, as the core quantizer decides it): high iff f + r * 2**-64 >= 1, f the place p in [0, 1)
 * rounded to a multiple of 2**-64 (nearest even; only p < 2**-12 has bits below). In double
 * arithmetic, no step rounding what decides: u = 1 - hi * 2**-32 and -lo * 2**-64 come exactly from
 * the words' bits under an exponent (no unsigned conversion, which AVX2 lacks), and f - u >= -lo *
 * 2**-64 decides: f - u is a multiple of 2**-64, exact below 2**-11 in size or where f >= u / 2
 * (Sterbenz), and otherwise at most -2**-11 (rounding keeps it there), below -lo * 2**-64 > -2**-32
 * as the exact value is. */
static inline LP_ALWAYS_INLINE double lp_sr_pick(double p, uint32_t lo, uint32_t hi, double low, double high)
{
    const double fine = 1.0 / 4096.0;
    const double f = p < fine ? (p + fine) - fine : p; /* the sum's spacing there: 2**-64 */
    const double v = from_bits_f64(0x4130000000000000ull | (uint64_t)hi); /* 2**20 + hi * 2**-32 */
    const double w = from_bits_f64(0x3F30000000000000ull | (uint64_t)lo); /* 2**-12 + lo * 2**-64 */
    return f - (1048577.0 - v) >= fine - w ? high : low;
}

/* q (double) rounded stochastically to an integer as the core quantizer rounds it to a 64-bit
 * integer format with 64 random bits (lp_sr_pick on the fraction |q| - floor(|q|)); clamped to
 * +-2**62 as lp_to_integer. */
static inline LP_ALWAYS_INLINE double lp_sr_integer(double q, uint32_t lo, uint32_t hi)
{
    const double big = 4503599627370496.0, top = 4611686018427387904.0;
    double a = fabs(q);
    a = a < top ? a : top;
    const double shifted = (a + big) - big;
    const double near = a < big ? shifted : a;
    const double below = near - 1.0;
    const double low = near > a ? below : near; /* floor(|q|) */
    const double m = lp_sr_pick(a - low, lo, hi, low, low + 1.0);
    const double minus = -m;
    return q < 0 ? minus : m;
}

/* A work unit's quotients rounded by lp_sr_integer with lp_quantize_f64's draws (64 random bits): the
 * draw of element h C + j (C = LP_WORK_UNIT / 2 counters) is words 2h (low) and 2h + 1 (high) of
 * counter j of the word-major Philox block w. */
static inline LP_ALWAYS_INLINE void lp_sr_integers(const double *quot, double *whole, int64_t len,
                                                   const uint32_t *w)
{
    const int64_t C = LP_WORK_UNIT / 2;
    for (int64_t h = 0; h < 2; h++) {
        const uint32_t *lo = w + 2 * h * C, *hi = w + (2 * h + 1) * C;
        const int64_t m = len - h * C < C ? len - h * C : C;
        for (int64_t j = 0; j < m; j++)
            whole[h * C + j] = lp_sr_integer(quot[h * C + j], lo[j], hi[j]);
    }
}
#endif

/* A chunk's per-element parameters (the channel of element i: (i / inner) % channels): sc the scale,
 * lo and hi the clamp bounds of the rounded quotient k, qmin - zp and qmax - zp (clamp(k + zp, qmin,
 * qmax) - zp is clamp(k, qmin - zp, qmax - zp): exact in double for an integer k, as those bounds
 * have at most 34 bits, so no 64-bit integer conversion, which AVX2 lacks). */
static inline LP_ALWAYS_INLINE void CAT(affine_params_, SFX)(int64_t start, int64_t len, const double *scale,
                                                              const int64_t *zp, int64_t channels, int64_t inner,
                                                              int64_t qmin, int64_t qmax, double *sc, double *lo,
                                                              double *hi)
{
    /* zp lies in [qmin, qmax] (at most 33 bits): qmin - zp is exact in double as in int64 */
    lp_channel_fill(sc, scale, start, len, inner, channels);
    lp_channel_fill_i64(lo, zp, start, len, inner, channels);
    const double qlo = (double)qmin, qhi = (double)qmax;
    for (int64_t i = 0; i < len; i++) {
        hi[i] = qhi - lo[i];
        lo[i] = qlo - lo[i];
    }
}

/* One chunk's quotients x / scale rounded to odd (NaN counts as 0). */
static inline LP_ALWAYS_INLINE void CAT(affine_quotients_, SFX)(const FT *in, double *quot, int64_t len,
                                                                 const double *sc, const int pc)
{
    for (int64_t i = 0; i < len; i++) {
        const double s1 = sc[pc ? i : 0];
        double x = (double)in[i];
        x = x != x ? 0.0 : x;
        double q = x / s1;
        quot[i] = lp_odd_fix(q, fma(-q, s1, x));
    }
}

/* One chunk's values from the rounded quotients k (integers as doubles): clamp(k, lo, hi) times the
 * scale, rounded once; NaN stays NaN. pc (a constant): per-element parameters, else element 0's. */
static inline LP_ALWAYS_INLINE void CAT(affine_values_, SFX)(const FT *in, FT *out, const double *whole, int64_t len,
                                                              const double *sc, const double *lo, const double *hi,
                                                              const int pc)
{
    for (int64_t i = 0; i < len; i++) {
        const int64_t at = pc ? i : 0;
        double k = whole[i];
        double m = (k < lo[at] ? lo[at] : (k > hi[at] ? hi[at] : k)) + 0.0; /* + 0.0: an integer has no -0 */
        double p = m * sc[at];
#if WBITS == 32
        p = lp_odd_fix(p, fma(m, sc[at], -p));
#endif
        const FT x = in[i], v = (FT)p;
        out[i] = x != x ? x : v;
    }
}

/* One chunk in a deterministic mode (mode and pc: constants after inlining): per-tensor parameters
 * (pc = 0) are one entry, per-channel ones (pc = 1) one per element. */
static inline LP_ALWAYS_INLINE void CAT(affine_det_chunk_, SFX)(const FT *in, FT *out, int64_t start, int64_t len,
                                                                 const double *sc, const double *lo, const double *hi,
                                                                 const int mode, const int pc)
{
    double quot[LP_WORK_UNIT];
    CAT(affine_quotients_, SFX)(in + start, quot, len, sc, pc);
    for (int64_t i = 0; i < len; i++)
        quot[i] = lp_to_integer(quot[i], mode);
    CAT(affine_values_, SFX)(in + start, out + start, quot, len, sc, lo, hi, pc);
}

/* One span in a deterministic mode (a constant per loop: each case vectorizes); pc a constant. */
static inline LP_ALWAYS_INLINE void CAT(affine_det_span_, SFX)(const FT *in, FT *out, int64_t start, int64_t len,
                                                                const double *sc, const double *lo, const double *hi,
                                                                const int mode, const int pc)
{
    switch (mode) {
    case LP_NEAREST_EVEN: CAT(affine_det_chunk_, SFX)(in, out, start, len, sc, lo, hi, LP_NEAREST_EVEN, pc); break;
    case LP_NEAREST_AWAY: CAT(affine_det_chunk_, SFX)(in, out, start, len, sc, lo, hi, LP_NEAREST_AWAY, pc); break;
    case LP_TOWARD_ZERO: CAT(affine_det_chunk_, SFX)(in, out, start, len, sc, lo, hi, LP_TOWARD_ZERO, pc); break;
    case LP_UP: CAT(affine_det_chunk_, SFX)(in, out, start, len, sc, lo, hi, LP_UP, pc); break;
    case LP_DOWN: CAT(affine_det_chunk_, SFX)(in, out, start, len, sc, lo, hi, LP_DOWN, pc); break;
    default: CAT(affine_det_chunk_, SFX)(in, out, start, len, sc, lo, hi, LP_ODD, pc); break;
    }
}

/* One channel's parameters as affine_params_ makes them: scale, qmin - zp, qmax - zp (exact) */
#define LP_AFFINE_CHANNEL(ch)                                                                       \
    const double s1[1] = {scale[ch]}, lo1[1] = {(double)(qmin - zp[ch])}, hi1[1] = {(double)(qmax - zp[ch])};

#if WBITS == 32 && defined(LP_SR_AVX512) && !defined(LP_AFFINE_PASS_AVX512)
#define LP_AFFINE_PASS_AVX512
/* Float32 elements [lo, hi) of a work unit with one scale s and clamp bounds qlo <= 0 <= qhi, in one
 * AVX-512 pass, in any mode (a constant after inlining): affine_det_chunk_'s rule, or with 64 random
 * bits lp_affine_'s stochastic one, bit for bit, nothing stored between the steps. On magnitudes: a =
 * min(|x| / s rounded to odd, 2**62) (lp_odd_quotient_avx512; Inf: 2**62), rounded to an integer k
 * as lp_to_integer rounds it (floor, ceil or nearest even by roundscale, up and down by x's sign;
 * nearest away floor(a) + (a - floor(a) >= 1/2); odd floor(a) plus one where inexact and even) or
 * stochastically (floor(a) plus one where lp_sr_up_avx512 says on p = a - floor(a); element i draws
 * words wl[i] and wl[C + i], C = LP_WORK_UNIT / 2), m = min(k, qhi or -qlo by x's sign), the value |m|
 * s rounded to odd, then to float, with x's sign where m != 0 (an integer has no -0); NaN stays NaN.
 * divide: as lp_odd_quotient_avx512's. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE void
affine_pass_avx512(const float *x, float *y, int64_t lo, int64_t hi, const uint32_t *wl, double s, double qlo,
                   double qhi, const int mode, const int divide)
{
    const int64_t unit_half = LP_WORK_UNIT / 2;
    const __m512d two64 = _mm512_set1_pd(0x1p64);
    const __m512d vs = _mm512_set1_pd(s), vinv = _mm512_set1_pd(1.0 / s), top = _mm512_set1_pd(0x1p62);
    const __m512d one = _mm512_set1_pd(1.0), half = _mm512_set1_pd(0.5), zero = _mm512_setzero_pd();
    const __m512d cap_pos = _mm512_set1_pd(qhi), cap_neg = _mm512_set1_pd(0.0 - qlo); /* +0 for qlo = 0 */
    const __m512i sign = _mm512_set1_epi64((int64_t)0x8000000000000000ull);
    for (int64_t i = lo; i < hi; i += 8) {
        const __mmask8 live = hi - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (hi - i)) - 1u);
        LP_PREFETCH_NEXT_PAGE(x + i, y + i)
        const __m256 xf = _mm256_maskz_loadu_ps(live, x + i);
        const __m512d xd = _mm512_cvtps_pd(xf);
        const __m512i xi = _mm512_castpd_si512(xd), xs = _mm512_and_si512(xi, sign);
        const __mmask8 neg = _mm512_movepi64_mask(xi), nan = _mm512_cmp_pd_mask(xd, xd, _CMP_UNORD_Q);
        const __m512d ax = _mm512_castsi512_pd(_mm512_andnot_si512(sign, xi));
        /* Inf and NaN need no masks: their quotient's residual is NaN (the quotient stays Inf or NaN), and
           vminpd returns its second operand where either is NaN, so a = 2**62 (NaN lanes end as x) */
        const __m512d a = _mm512_min_pd(lp_odd_quotient_avx512(ax, vs, vinv, divide), top);
        const __m512d low = _mm512_roundscale_pd(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        __m512d m;
        if (mode == LP_STOCHASTIC) {
            const __m512d p64 = _mm512_mul_pd(_mm512_sub_pd(a, low), two64);
            m = _mm512_mask_add_pd(low, lp_sr_up_avx512(p64, wl + i, wl + unit_half + i, live), low, one);
        } else if (mode == LP_NEAREST_EVEN) {
            m = _mm512_roundscale_pd(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        } else if (mode == LP_NEAREST_AWAY) {
            m = _mm512_mask_add_pd(low, _mm512_cmp_pd_mask(_mm512_sub_pd(a, low), half, _CMP_GE_OQ), low, one);
        } else if (mode == LP_TOWARD_ZERO) {
            m = low;
        } else if (mode == LP_UP || mode == LP_DOWN) { /* away from 0 for x > 0 (up) or x < 0 (down) */
            const __m512d ceil = _mm512_roundscale_pd(a, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
            m = mode == LP_UP ? _mm512_mask_blend_pd(neg, ceil, low) : _mm512_mask_blend_pd(neg, low, ceil);
        } else { /* odd: floor(a) + 1 where a is not an integer and floor(a) is even */
            const __m512d hl = _mm512_mul_pd(low, half);
            const __mmask8 even = _mm512_cmp_pd_mask(
                _mm512_roundscale_pd(hl, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), hl, _CMP_EQ_OQ);
            m = _mm512_mask_add_pd(low, even & _mm512_cmp_pd_mask(a, low, _CMP_GT_OQ), low, one);
        }
        m = _mm512_min_pd(m, _mm512_mask_blend_pd(neg, cap_pos, cap_neg));
        const __m512d p = _mm512_mul_pd(m, vs);
        __m512i pb = _mm512_castpd_si512(lp_odd_fix_avx512(p, _mm512_fmsub_pd(m, vs, p))); /* exact residual */
        pb = _mm512_mask_or_epi64(pb, _mm512_cmp_pd_mask(m, zero, _CMP_NEQ_OQ), pb, xs);
        const __m256 v = _mm256_mask_mov_ps(_mm512_cvtpd_ps(_mm512_castsi512_pd(pb)), nan, xf);
        _mm256_mask_storeu_ps(y + i, live, v);
    }
}

/* affine_pass_avx512 for a deterministic mode named at run time (each a loop of its own) */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void affine_det_run_avx512(const float *x, float *y,
                                                                                      int64_t lo, int64_t hi,
                                                                                      double s, double qlo,
                                                                                      double qhi, int mode)
{
    const int divide = !lp_sr_divisor_ok(s);
#define LP_AFFINE_MODE(md)                                                                          \
    (divide ? affine_pass_avx512(x, y, lo, hi, 0, s, qlo, qhi, md, 1) : affine_pass_avx512(x, y, lo, hi, 0, s, qlo, qhi, md, 0))
    switch (mode) {
    case LP_NEAREST_EVEN: LP_AFFINE_MODE(LP_NEAREST_EVEN); break;
    case LP_NEAREST_AWAY: LP_AFFINE_MODE(LP_NEAREST_AWAY); break;
    case LP_TOWARD_ZERO: LP_AFFINE_MODE(LP_TOWARD_ZERO); break;
    case LP_UP: LP_AFFINE_MODE(LP_UP); break;
    case LP_DOWN: LP_AFFINE_MODE(LP_DOWN); break;
    default: LP_AFFINE_MODE(LP_ODD); break;
    }
#undef LP_AFFINE_MODE
}
#endif

/* A deterministic mode: per-tensor parameters; per channel, runs of at least LP_SHORT_RUN elements
 * with their channel's (as per tensor), shorter ones with each element's. */
LP_CLONES static void CAT(affine_det_, SFX)(const FT *in, FT *out, int64_t n, const double *scale, const int64_t *zp,
                                            int64_t channels, int64_t inner, int64_t qmin, int64_t qmax,
                                            const int mode, int nthreads)
{
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
#if WBITS == 32 && defined(LP_SR_AVX512)
    /* a scale per tensor or per run: one fused pass (affine_det_run_avx512) */
    const int fused = (channels == 1 || inner >= LP_SHORT_RUN) && lp_sr_avx512_ok();
#endif
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        double sc[LP_WORK_UNIT], lo[LP_WORK_UNIT], hi[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
#if WBITS == 32 && defined(LP_SR_AVX512)
        if (fused) {
#define LP_AFFINE_RUN(s, l, ch)                                                                     \
    affine_det_run_avx512(in + start, out + start, (s), (s) + (l), scale[ch], (double)(qmin - zp[ch]), \
                          (double)(qmax - zp[ch]), mode);
            LP_CHANNEL_RUNS(start, len, inner, channels, LP_AFFINE_RUN)
#undef LP_AFFINE_RUN
            continue;
        }
#endif
        if (channels == 1) {
            CAT(affine_params_, SFX)(start, 1, scale, zp, 1, 1, qmin, qmax, sc, lo, hi);
            CAT(affine_det_span_, SFX)(in, out, start, len, sc, lo, hi, mode, 0);
        } else if (inner >= LP_SHORT_RUN) {
#define LP_AFFINE_RUN(s, l, ch)                                                                     \
    {                                                                                               \
        LP_AFFINE_CHANNEL(ch)                                                                       \
        CAT(affine_det_span_, SFX)(in, out, start + (s), (l), s1, lo1, hi1, mode, 0);               \
    }
            LP_CHANNEL_RUNS(start, len, inner, channels, LP_AFFINE_RUN)
#undef LP_AFFINE_RUN
        } else {
            CAT(affine_params_, SFX)(start, len, scale, zp, channels, inner, qmin, qmax, sc, lo, hi);
            CAT(affine_det_span_, SFX)(in, out, start, len, sc, lo, hi, mode, 1);
        }
    }
}

#if WBITS == 32 && defined(LP_SR_AVX512) && !defined(LP_AFFINE_SR_AVX512)
#define LP_AFFINE_SR_AVX512
/* Stochastic rounding (64 random bits) of elements [lo, hi) of the unit at x (chunk-relative; w its
 * Philox block) by affine_pass_avx512, a half of the unit at a time (each half its own words). */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void affine_sr_avx512(const float *x, float *y, int64_t lo,
                                                                          int64_t hi, const uint32_t *w, double s,
                                                                          double qlo, double qhi)
{
    const int64_t half = LP_WORK_UNIT / 2;
    for (int h = 0; h < 2; h++) {
        const int64_t a = lo > h * half ? lo : h * half, b = hi < (h + 1) * half ? hi : (h + 1) * half;
        if (a >= b)
            continue;
        const uint32_t *wl = w + h * half; /* element i's low word: wl[i]; its high word: wl[half + i] */
        if (lp_sr_divisor_ok(s))
            affine_pass_avx512(x, y, a, b, wl, s, qlo, qhi, LP_STOCHASTIC, 0);
        else
            affine_pass_avx512(x, y, a, b, wl, s, qlo, qhi, LP_STOCHASTIC, 1);
    }
}
#endif

LP_CLONES void CAT(lp_affine_, SFX)(const FT *in, FT *out, int64_t n, const double *scale, const int64_t *zp,
                                    int64_t channels, int64_t inner, int64_t qmin, int64_t qmax, const lp_qparams *ip,
                                    lp_rounding mode, uint64_t seed, uint64_t offset, int nthreads)
{
    if (mode != LP_STOCHASTIC) {
        CAT(affine_det_, SFX)(in, out, n, scale, zp, channels, inner, qmin, qmax, mode, nthreads);
        return;
    }
    /* stochastic: the core quantizer's block routine on the quotients (ip: 64-bit integers), its
       draws laid out as lp_quantize_f64's over the n quotients */
    const int64_t nchunks = (n + LP_WORK_UNIT - 1) / LP_WORK_UNIT;
#if WBITS == 32 && defined(LP_SR_AVX512)
    /* 64 random bits, a scale per tensor or per run: one fused pass (affine_sr_avx512) */
    const int fused = ip->rbits == 64 && (channels == 1 || inner >= LP_SHORT_RUN) && lp_sr_avx512_ok();
#endif
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < nchunks; c++) {
        double quot[LP_WORK_UNIT], whole[LP_WORK_UNIT], sc[LP_WORK_UNIT], lo[LP_WORK_UNIT], hi[LP_WORK_UNIT];
        const int64_t start = c * LP_WORK_UNIT;
        const int64_t len = n - start < LP_WORK_UNIT ? n - start : LP_WORK_UNIT;
        const int pc = channels > 1 && inner < LP_SHORT_RUN, runs = channels > 1 && !pc; /* as affine_det_ */
#if WBITS == 32 && defined(LP_SR_AVX512)
        if (fused) {
            uint32_t w[2 * LP_WORK_UNIT];
            philox_fill_best(w, LP_WORK_UNIT / 2, seed, offset + (uint64_t)c * (LP_WORK_UNIT / 2));
#define LP_AFFINE_RUN(s, l, ch)                                                                     \
    affine_sr_avx512(in + start, out + start, (s), (s) + (l), w, scale[ch], (double)(qmin - zp[ch]),   \
                     (double)(qmax - zp[ch]));
            LP_CHANNEL_RUNS(start, len, inner, channels, LP_AFFINE_RUN)
#undef LP_AFFINE_RUN
            continue;
        }
#endif
        if (runs) {
#define LP_AFFINE_RUN(s, l, ch)                                                                     \
    {                                                                                               \
        const double s1[1] = {scale[ch]};                                                           \
        CAT(affine_quotients_, SFX)(in + start + (s), quot + (s), (l), s1, 0);                      \
    }
            LP_CHANNEL_RUNS(start, len, inner, channels, LP_AFFINE_RUN)
#undef LP_AFFINE_RUN
        } else {
            CAT(affine_params_, SFX)(start, pc ? len : 1, scale, zp, channels, pc ? inner : 1, qmin, qmax, sc, lo, hi);
            if (pc)
                CAT(affine_quotients_, SFX)(in + start, quot, len, sc, 1);
            else
                CAT(affine_quotients_, SFX)(in + start, quot, len, sc, 0);
        }
        const uint64_t ctr = offset + (uint64_t)c * (LP_WORK_UNIT / 2);
        if (ip->rbits == 64) {
            uint32_t w[2 * LP_WORK_UNIT];
            philox_fill_best(w, LP_WORK_UNIT / 2, seed, ctr);
            lp_sr_integers(quot, whole, len, w);
        } else {
            block_f64(quot, whole, len, ip, mode, seed, ctr, 0);
        }
        if (runs) {
#define LP_AFFINE_RUN(s, l, ch)                                                                     \
    {                                                                                               \
        LP_AFFINE_CHANNEL(ch)                                                                       \
        CAT(affine_values_, SFX)(in + start + (s), out + start + (s), whole + (s), (l), s1, lo1, hi1, 0); \
    }
            LP_CHANNEL_RUNS(start, len, inner, channels, LP_AFFINE_RUN)
#undef LP_AFFINE_RUN
        } else if (pc) {
            CAT(affine_values_, SFX)(in + start, out + start, whole, len, sc, lo, hi, 1);
        } else {
            CAT(affine_values_, SFX)(in + start, out + start, whole, len, sc, lo, hi, 0);
        }
    }
}
#undef LP_AFFINE_CHANNEL
