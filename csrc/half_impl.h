/* float16 / bfloat16 <-> float32 for the array API's half-precision inputs (numpy's and ml_dtypes'
 * conversions run at 1-4 ns an element, torch's at about 1.7 on one thread). Integer and float32
 * arithmetic only, branch-free: the loops vectorize on every path. Included by quantize.c after the
 * float32 instantiation (to_bits_f32, from_bits_f32). */

/* Widening, exact: float16 as numpy converts it (NaN payloads kept, not quieted; subnormals m *
 * 2**-24), bfloat16 as the top half of the float32 pattern. */
LP_CLONES void lp_half_widen(const uint16_t *in, float *out, int64_t n, int bf16)
{
    if (bf16) {
        for (int64_t i = 0; i < n; i++)
            out[i] = from_bits_f32((uint32_t)in[i] << 16);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t h = in[i];
        const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
        const uint32_t normal = sign | ((e + 112u) << 23) | (m << 13);
        const uint32_t special = sign | 0x7F800000u | (m << 13);
        const uint32_t sub = sign | to_bits_f32((float)(int32_t)m * 5.9604644775390625e-8f); /* m * 2**-24: exact */
        out[i] = from_bits_f32(e == 31u ? special : (e == 0u ? sub : normal));
    }
}

/* Narrowing of float32 values that the half type holds exactly, and of Inf and NaN (anything else:
 * undefined; the caller checks that the format fits): the pattern numpy's and torch's conversions
 * give them. NaN keeps its sign and the top payload bits, made nonzero where they are all zero (a
 * NaN never becomes Inf). */
LP_CLONES void lp_half_narrow(const float *in, uint16_t *out, int64_t n, int bf16)
{
    if (bf16) {
        for (int64_t i = 0; i < n; i++) {
            const uint32_t b = to_bits_f32(in[i]), top = b >> 16;
            const uint32_t lost = (b & 0x7FFFFFFFu) > 0x7F800000u && (top & 0x7Fu) == 0; /* a NaN read as Inf */
            out[i] = (uint16_t)(top | (lost ? 0x40u : 0u));
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        const uint32_t b = to_bits_f32(in[i]);
        const uint32_t sign = (b >> 16) & 0x8000u, a = b & 0x7FFFFFFFu, m = (a >> 13) & 0x3FFu;
        const uint32_t normal = (((a >> 23) - 112u) << 10) | m;
        const float tiny = a < 0x38800000u ? from_bits_f32(a) : 0.0f; /* below 2**-14 (else unused) */
        const uint32_t sub = (uint32_t)(int32_t)(tiny * 16777216.0f);  /* |x| * 2**24 < 1024: exact */
        const uint32_t special = 0x7C00u | (a > 0x7F800000u && m == 0 ? 1u : m);
        out[i] = (uint16_t)(sign | (a >= 0x7F800000u ? special : (a >= 0x38800000u ? normal : sub)));
    }
}

/* -- float16 and bfloat16 rounding of float32 in nearest even, at memory speed ----------------------
 * lp_quantize_f32 takes these for exactly IEEE binary16's and bfloat16's parameter blocks (the same
 * bits as its rule: tests/test_half_conversions.py checks them at every decision point against numpy's
 * and ml_dtypes' conversions, and the isa battery against the generic build, which has no F16C path). */

/* p is the parameter block of IEEE binary16 (1) or bfloat16 (2) for float32 input, else 0 */
static int lp_half_kind(const lp_qparams *p)
{
    const int ieee_specials = p->inf_pos_full == 0x7F800000u && p->inf_neg_full == 0xFF800000u &&
                              p->nan_pos_full == 0x7FC00000u && p->nan_neg_full == 0xFFC00000u &&
                              p->ovf_pos == 0x7F800000u && p->ovf_neg == 0x7F800000u && p->keep_neg_zero &&
                              p->par_mask == 0;
    if (ieee_specials && p->drop0 == 13 && p->sub_exp == 113 && p->lim_pos == 0x477FE000u &&
        p->lim_neg == 0x477FE000u && p->tiny == 0x33800000u && p->q == 0x33800000u && p->half_q == 0x33000000u)
        return 1;
    if (ieee_specials && p->drop0 == 16 && p->sub_exp == 1 && p->lim_pos == 0x7F7F0000u &&
        p->lim_neg == 0x7F7F0000u && p->tiny == 0x10000u && p->q == 0x10000u && p->half_q == 0x8000u)
        return 2;
    return 0;
}

/* bfloat16: the pattern plus 0x7FFF and its kept part's last bit, truncated (nearest even on the
 * pattern, which is linear in the value within and across binades, subnormals included; past the
 * largest finite value it carries into Inf); NaN the quiet NaN of its sign. Plain C: it vectorizes. */
LP_CLONES static void lp_bf16_rne(const float *in, float *out, int64_t n)
{
    enum { PIECE = 256 };
    for (int64_t lo = 0; lo < n; lo += PIECE) {
        const int64_t m = n - lo < PIECE ? n - lo : PIECE;
        for (int64_t i = 0; i < m; i += 16)
            LP_PREFETCH_NEXT_PAGE(in + lo + i, out + lo + i)
        for (int64_t i = lo; i < lo + m; i++) {
            const uint32_t b = to_bits_f32(in[i]);
            const uint32_t r = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
            const uint32_t nan = (b & 0x80000000u) | 0x7FC00000u;
            out[i] = from_bits_f32((b & 0x7FFFFFFFu) > 0x7F800000u ? nan : r);
        }
    }
}

#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 3
/* binary16: VCVTPS2PH with nearest even in its immediate (not MXCSR's mode; flush-to-zero does not
 * apply to it, and a float32 subnormal, which denormals-are-zero would read as 0, rounds to a zero of
 * its sign either way) and back; NaN then the quiet NaN of its sign (the conversion keeps payload
 * bits). */
__attribute__((target("avx512f"))) static void lp_fp16_rne_avx512(const float *in, float *out, int64_t n)
{
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u), qnan = _mm512_set1_epi32(0x7FC00000);
    for (int64_t i = 0; i < n; i += 16) {
        const int64_t m = n - i < 16 ? n - i : 16;
        const __mmask16 live = (__mmask16)((1u << m) - 1u);
        const __m512 x = _mm512_maskz_loadu_ps(live, in + i);
        LP_PREFETCH_NEXT_PAGE(in + i, out + i)
        __m512 r = _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        const __m512i quiet = _mm512_ternarylogic_epi32(_mm512_castps_si512(x), sign, qnan, 0xEA); /* x & sign | qnan */
        r = _mm512_mask_mov_ps(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_castsi512_ps(quiet));
        _mm512_mask_storeu_ps(out + i, live, r);
    }
}

__attribute__((target("avx2,f16c"))) static void lp_fp16_rne_f16c(const float *in, float *out, int64_t n)
{
    const __m256 sign = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const __m256 qnan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FC00000));
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(in + i);
        if (!(i & 15))
            LP_PREFETCH_NEXT_PAGE(in + i, out + i)
        const __m256 r = _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        const __m256 quiet = _mm256_or_ps(_mm256_and_ps(x, sign), qnan);
        _mm256_storeu_ps(out + i, _mm256_blendv_ps(r, quiet, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)));
    }
    if (i < n) { /* the ragged end through a scratch vector */
        float tmp[8] = {0};
        memcpy(tmp, in + i, (size_t)(n - i) * sizeof(float));
        lp_fp16_rne_f16c(tmp, tmp, 8);
        memcpy(out + i, tmp, (size_t)(n - i) * sizeof(float));
    }
}
#endif

/* Nearest-even rounding of n float32 values to binary16 or bfloat16 by the routines above, where p is
 * that format's block and the CPU has what they need; returns whether it ran. in == out is allowed. */
static int lp_half_rne(const float *in, float *out, int64_t n, const lp_qparams *p, int nthreads)
{
    const int kind = lp_half_kind(p);
    int have = 0; /* 2: AVX-512, 1: F16C, 0: neither */
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 3
    have = (LP_MAX_ISA >= 4 && __builtin_cpu_supports("avx512f")) ? 2
           : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) ? 1 : 0;
#endif
    if (kind == 0 || (kind == 1 && !have))
        return 0;
    const int64_t piece = 1 << 16, npieces = (n + piece - 1) / piece;
    nthreads = lp_team(n, nthreads);
    LP_PARALLEL_FOR
    for (int64_t c = 0; c < npieces; c++) {
        const int64_t s = c * piece, len = n - s < piece ? n - s : piece;
        if (kind == 2) {
            lp_bf16_rne(in + s, out + s, len);
            continue;
        }
#if defined(LP_X86_DISPATCH) && LP_MAX_ISA >= 3
        if (have == 2)
            lp_fp16_rne_avx512(in + s, out + s, len);
        else
            lp_fp16_rne_f16c(in + s, out + s, len);
#endif
    }
    return 1;
}
