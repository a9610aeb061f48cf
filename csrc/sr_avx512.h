/* AVX-512 steps shared by the fused stochastic kernels of float32 input (fscale_impl.h, affine_impl.h):
 * the quotient rounded to odd without a division, and the 64-bit draw's decision. Included once, by
 * quantize.c, on x86-64 builds that carry AVX-512 code (LP_MAX_ISA >= 4); the callers check the CPU
 * (lp_sr_avx512_ok). */
#ifndef LP_SR_AVX512_H
#define LP_SR_AVX512_H
#include <math.h>
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 4
#define LP_SR_AVX512 1

/* Whether the CPU runs these steps (AVX-512 F, DQ: the unsigned 64-bit conversion and compare, and VL:
 * masked 8-lane loads and stores). The dispatching build compiles them by target attributes alone,
 * without -march: every intrinsic here must be covered by those three. */
static inline int lp_sr_avx512_ok(void)
{
    static int ok = -1;
    if (ok < 0)
        ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
    return ok;
}

/* The divisors the division-free quotient admits: a / b for float32 magnitudes a and such b stays
 * within double's normal range (2**-349 ... 2**328), where the steps below are exact. */
static inline int lp_sr_divisor_ok(double b)
{
    return b >= 0x1p-200 && b <= 0x1p200;
}

/* A nonnegative q rounded to odd given the sign of its exact residual (exact value - q, exact itself):
 * truncation (q less an ulp where the residual is negative) with its last bit set where the residual
 * is nonzero; a q of 0 with a positive residual becomes the smallest subnormal. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE __m512d
lp_odd_fix_avx512(__m512d q, __m512d res)
{
    const __m512d zero = _mm512_setzero_pd();
    const __m512i one = _mm512_set1_epi64(1);
    __m512i qb = _mm512_castpd_si512(q);
    qb = _mm512_mask_sub_epi64(qb, _mm512_cmp_pd_mask(res, zero, _CMP_LT_OQ), qb, one);
    qb = _mm512_mask_or_epi64(qb, _mm512_cmp_pd_mask(res, zero, _CMP_NEQ_OQ), qb, one);
    return _mm512_castsi512_pd(qb);
}

/* a / b rounded to odd for magnitudes a >= 0 (not Inf or NaN) and b > 0 (inv = 1 / b rounded):
 * lp_odd_quotient's result, bit for bit. divide = 0 (b within lp_sr_divisor_ok): q1 = a * inv,
 * q = q1 + (a - q1 b) inv by fma is faithful (one of the two doubles around a / b: inv and q1 are
 * within 1.5 ulps, the correction within a rounding), so its residual a - q b is exact; otherwise q
 * = a / b; then lp_odd_fix_avx512. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE __m512d
lp_odd_quotient_avx512(__m512d a, __m512d b, __m512d inv, const int divide)
{
    __m512d q;
    if (divide) {
        q = _mm512_div_pd(a, b);
    } else {
        const __m512d q1 = _mm512_mul_pd(a, inv);
        q = _mm512_fmadd_pd(_mm512_fnmadd_pd(q1, b, a), inv, q1);
    }
    return lp_odd_fix_avx512(q, _mm512_fnmadd_pd(q, b, a)); /* the residual: exact */
}

/* lp_sr_pick's decision for 8 places p64 = p * 2**64 (p in [0, 1), exact) against the draws R = hi *
 * 2**32 + lo (words at wl, wh; live lanes): up iff F + R >= 2**64, F = p64 to the nearest integer
 * (ties to even: p on lp_sr_pick's 2**-64 grid), i.e. F > ~R unsigned. lp_sr_pick's double comparison
 * is that: its difference f - (1 - hi 2**-32) is exact wherever it lies within 2**-32 of 0, and its
 * sign decides elsewhere. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static inline LP_ALWAYS_INLINE __mmask8
lp_sr_up_avx512(__m512d p64, const uint32_t *wl, const uint32_t *wh, __mmask8 live)
{
    const __m512i F = _mm512_cvt_roundpd_epu64(p64, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512i notf = _mm512_ternarylogic_epi64(F, F, F, 0x55); /* ~F: F > ~R iff R > ~F */
    /* R's halves interleaved by one permute: lanes (lo[j], hi[j]) are the 64-bit R[j] */
    const __m512i pairs = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i R = _mm512_permutex2var_epi32(_mm512_castsi256_si512(_mm256_maskz_loadu_epi32(live, wl)), pairs,
                                                _mm512_castsi256_si512(_mm256_maskz_loadu_epi32(live, wh)));
    return _mm512_cmp_epu64_mask(R, notf, _MM_CMPINT_NLE);
}
#endif

#ifdef LP_SR_AVX512
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void lp_odd_quotients_avx512_(const double *a, int64_t n, double b,
                                                                                double *out)
{
    const __m512d vb = _mm512_set1_pd(b), inv = _mm512_set1_pd(1.0 / b);
    const int divide = !lp_sr_divisor_ok(b);
    for (int64_t i = 0; i < n; i += 8) {
        const __mmask8 live = n - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1u);
        const __m512d x = _mm512_maskz_loadu_pd(live, a + i);
        const __m512d q = divide ? lp_odd_quotient_avx512(x, vb, inv, 1) : lp_odd_quotient_avx512(x, vb, inv, 0);
        _mm512_mask_storeu_pd(out + i, live, q);
    }
}

__attribute__((target("avx512f,avx512dq,avx512vl"))) static void lp_sr_ups_avx512_(const double *p64, const uint32_t *lo,
                                                                        const uint32_t *hi, int64_t n, uint8_t *up)
{
    for (int64_t i = 0; i < n; i += 8) {
        const __mmask8 live = n - i >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << (n - i)) - 1u);
        const __mmask8 u = lp_sr_up_avx512(_mm512_maskz_loadu_pd(live, p64 + i), lo + i, hi + i, live);
        for (int j = 0; j < 8 && i + j < n; j++)
            up[i + j] = (uint8_t)((u >> j) & 1);
    }
}
#endif

/* lp_sr_up_avx512 on n places p64[i] (in [0, 2**64)) and draws hi[i] * 2**32 + lo[i] into up (0/1), for
 * tests; 0 (nothing done) without AVX-512. */
int lp_sr_ups_avx512(const double *p64, const uint32_t *lo, const uint32_t *hi, int64_t n, uint8_t *up)
{
#ifdef LP_SR_AVX512
    if (!lp_sr_avx512_ok())
        return 0;
    lp_sr_ups_avx512_(p64, lo, hi, n, up);
    return 1;
#else
    (void)p64, (void)lo, (void)hi, (void)n, (void)up;
    return 0;
#endif
}

/* lp_odd_quotient_avx512 on n magnitudes a[i] / b (for tests: the fused kernels' quotient against the
 * numpy rule on doubles, where crafted quotients reach every case); 0 (nothing done) without AVX-512. */
int lp_odd_quotients_avx512(const double *a, int64_t n, double b, double *out)
{
#ifdef LP_SR_AVX512
    if (!lp_sr_avx512_ok() || !(b > 0) || b == INFINITY)
        return 0;
    lp_odd_quotients_avx512_(a, n, b, out);
    return 1;
#else
    (void)a, (void)n, (void)b, (void)out;
    return 0;
#endif
}
#endif
