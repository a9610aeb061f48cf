/* The fp16 accumulator's fastest path on x86-64 CPUs with F16C, FMA and AVX2: s = half(a * b + s) for four
 * rows by sixteen columns of outputs, over k-steps [t0, t1), the accumulators in registers (the
 * generic tile's 8 x 16 spill to memory on AVX2). mac_impl.h
 * takes it (native 5) exactly where its native 3 holds: products exact in float with at most 11
 * significant bits, nearest even, no overflow (lp_macparams fast and acc_half == 2). Then the fused
 * a * b + s is float's nearest-even sum of the exact product, and VCVTPS2PH in nearest even is the
 * correct rounding of that to binary16, subnormals included (MXCSR's flush-to-zero does not apply to
 * it; no float32 input is subnormal here): the bits of lp_half_rne_f32. Included once, by
 * quantize.c (through mac_impl.h). */
#ifndef LP_MAC_HALF_F16C_H
#define LP_MAC_HALF_F16C_H
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 3
#define LP_MAC_F16C 1

/* float to binary16 in nearest even (the immediate, not MXCSR's mode) and back, 8 lanes */
#define LP_HALF_RNE8(v) _mm256_cvtph_ps(_mm256_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT))

/* rows r = 0..3 of a (a + r * lda + t) and the columns 0..15 of b's rows (b + t * ldb; ldb 0: one
 * row for every step) into s (s + r * lds + j, float values of binary16), steps t0 <= t < t1 */
__attribute__((target("avx2,fma,f16c"))) static void lp_mac_half_span_f16c(const float *a, int64_t lda,
                                                                            const float *b, int64_t ldb,
                                                                            int64_t t0, int64_t t1, float *s,
                                                                            int64_t lds)
{
    __m256 s00 = _mm256_loadu_ps(s), s01 = _mm256_loadu_ps(s + 8);
    __m256 s10 = _mm256_loadu_ps(s + lds), s11 = _mm256_loadu_ps(s + lds + 8);
    __m256 s20 = _mm256_loadu_ps(s + 2 * lds), s21 = _mm256_loadu_ps(s + 2 * lds + 8);
    __m256 s30 = _mm256_loadu_ps(s + 3 * lds), s31 = _mm256_loadu_ps(s + 3 * lds + 8);
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda;
    for (int64_t t = t0; t < t1; t++) {
        const float *bt = b + t * ldb;
        const __m256 b0 = _mm256_loadu_ps(bt), b1 = _mm256_loadu_ps(bt + 8);
        __m256 x = _mm256_broadcast_ss(a0 + t);
        s00 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b0, s00));
        s01 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b1, s01));
        x = _mm256_broadcast_ss(a1 + t);
        s10 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b0, s10));
        s11 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b1, s11));
        x = _mm256_broadcast_ss(a2 + t);
        s20 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b0, s20));
        s21 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b1, s21));
        x = _mm256_broadcast_ss(a3 + t);
        s30 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b0, s30));
        s31 = LP_HALF_RNE8(_mm256_fmadd_ps(x, b1, s31));
    }
    _mm256_storeu_ps(s, s00), _mm256_storeu_ps(s + 8, s01);
    _mm256_storeu_ps(s + lds, s10), _mm256_storeu_ps(s + lds + 8, s11);
    _mm256_storeu_ps(s + 2 * lds, s20), _mm256_storeu_ps(s + 2 * lds + 8, s21);
    _mm256_storeu_ps(s + 3 * lds, s30), _mm256_storeu_ps(s + 3 * lds + 8, s31);
}
#undef LP_HALF_RNE8

/* whether to run lp_mac_half_span_f16c: the CPU has it, and the build's generic tile is not AVX-512 code
 * there (its 8 x 16 accumulators fit AVX-512's 32 registers, sixteen lanes each: the v4 clone, or a
 * build for x86-64-v4 alone, keeps to it) */
static int lp_have_f16c(void)
{
    static int have = -1;
    if (have < 0)
        have = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")
               && !(LP_MAX_ISA >= 4 && __builtin_cpu_supports("x86-64-v4"));
    return have;
}
#endif
#endif
